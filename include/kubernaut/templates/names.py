"""Template names, their DAG ids and files: light (no pydantic, no YAML), so the DAG
processor's parse of an unchanged template imports nothing else of the template layer."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# DNS-1123 label: what Kubernetes allows in names, and safe inside a dag_id.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_NAME = 63
DAG_ID_PREFIX = "kubernaut_"
TEMPLATE_SUFFIXES = (".yaml", ".yml")


def dag_id_of(name: str) -> str:
    """The DAG id of the template named ``name``."""
    return DAG_ID_PREFIX + name.replace("-", "_")


def template_name(dag_id: str) -> str | None:
    """The name of the template whose DAG id this is (``dag_id_of`` backwards), or None when
    no template name gives this id."""
    if not dag_id.startswith(DAG_ID_PREFIX):
        return None
    name = dag_id[len(DAG_ID_PREFIX) :].replace("_", "-")  # names have '-', never '_'
    return name if len(name) <= MAX_NAME and re.match(NAME_PATTERN, name) else None


def template_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given plus the template files directly inside given directories."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in TEMPLATE_SUFFIXES and f.is_file())
        else:
            files.append(p)
    return files
