"""Built-in actions. Importing this package registers them all."""

from nerve.engine.actions import dialogs, files, flow, input, mqtt, network, process, window

__all__ = ["dialogs", "files", "flow", "input", "mqtt", "network", "process", "window"]
