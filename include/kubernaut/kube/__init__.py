"""Small helpers over the official Kubernetes client, shared by the actions."""
