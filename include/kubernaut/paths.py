"""Where kubernaut finds its files, for every process that needs them (the DAG processor, the
intake, the CLI, the simulator) without importing the DAG factory."""

from __future__ import annotations

import os
from pathlib import Path

TEMPLATES_DIR_ENV = "KUBERNAUT_TEMPLATES_DIR"


def templates_dir(default: Path | None = None) -> Path:
    """``$KUBERNAUT_TEMPLATES_DIR``, else ``default``, else ./templates."""
    env = os.environ.get(TEMPLATES_DIR_ENV)
    if env:
        return Path(env)
    return default if default is not None else Path.cwd() / "templates"


__all__ = ["TEMPLATES_DIR_ENV", "templates_dir"]
