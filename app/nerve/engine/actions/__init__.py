"""Built-in actions. Importing this package registers them all."""

from nerve.engine.actions import files, flow, input, mqtt, network, process

__all__ = ["files", "flow", "input", "mqtt", "network", "process"]
