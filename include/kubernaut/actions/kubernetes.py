"""Built-in kubernetes actions."""
