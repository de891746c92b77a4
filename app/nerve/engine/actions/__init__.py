"""Built-in actions. Importing this package registers them all."""

from nerve.engine.actions import files, flow, input, network, process, window

__all__ = ["files", "flow", "input", "network", "process", "window"]
