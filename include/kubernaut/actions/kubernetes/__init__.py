"""Built-in Kubernetes actions, one module per kind of object they act on.

Empty on purpose: the registry imports an action's own module on first use
(``registry.BUILTIN_ACTIONS``), so importing this package must not import them all.
"""
