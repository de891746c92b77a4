"""The rule engine: what rules mean, and running them."""
