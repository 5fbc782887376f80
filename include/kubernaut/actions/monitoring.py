"""Built-in monitoring actions."""
