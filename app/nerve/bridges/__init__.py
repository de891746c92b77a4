"""Bridges: Nerve's bus reaching past one machine (MQTT, NATS, webhooks)."""
