"""A cache of validated templates, so that a parse does not load and check them again.

Airflow parses the DAG files in a fresh process every interval and again for every task
start; loading a template (YAML, the schema, the cross-step and Jinja checks, the action
registry) costs several times more than reading back the ``Template`` it gave last time.

One cache file per template directory and kind of value
(``<cache dir>/<hash of the directory>.<kind>.pickle``) maps each file name to the SHA-256 of
the file's text and what that text gave, pickled: the ``Template`` it validated into (kind
``template``), the DAG factory's plan of its DAG (``dag-plan``, kubernaut.dag_plan: plain data,
so an unchanged template's parse imports neither pydantic nor YAML, nor reads the templates). An entry is used
only when the file's text is byte-for-byte the same, and the whole file only when it was
written by the same code: its stamp covers this cache's format, Python, pydantic and PyYAML,
the size and mtime of every module of the ``kubernaut`` package and the installed
distributions (what the action registry, and so the checks, depend on: installing, upgrading
or removing an action plugin changes it). Only valid templates are
cached: a broken file is loaded (and its errors placed) every time.

Writers write a temporary file and rename it over the old one, so a reader sees a whole
file, old or new; two writers at once lose at worst the other's new entries. The file is
read only when it belongs to this user and neither it nor its directory is writable by
others (it holds pickles). Anything unreadable is a miss, never an error.

Where: ``KUBERNAUT_TEMPLATE_CACHE`` (a directory, or ``off``); by default
``$AIRFLOW_HOME/kubernaut-template-cache``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from kubernaut.templates.model import Template

log = logging.getLogger(__name__)

CACHE_ENV = "KUBERNAUT_TEMPLATE_CACHE"
DISABLED = ("off", "0", "false", "no", "none")
DEFAULT_SUBDIR = "kubernaut-template-cache"
FORMAT_VERSION = 2
TEMPLATE = "template"  # the kind of a cached Template
V = TypeVar("V")
Entry = tuple[bytes, bytes]  # text digest, pickled value
_DIST_SUFFIXES = (".dist-info", ".egg-info", ".egg-link", ".pth")


def cache_dir() -> Path | None:
    """The configured cache directory, or None when caching is off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        value = value.strip()
        return None if not value or value.lower() in DISABLED else Path(value)
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / DEFAULT_SUBDIR


def default_cache() -> TemplateCache | None:
    directory = cache_dir()
    return TemplateCache(directory) if directory is not None else None


@functools.cache
def code_stamp() -> str:
    """What a cached validation depends on besides the template's text (see the module doc)."""
    import pydantic
    import yaml

    import kubernaut

    digest = hashlib.sha256()
    digest.update(f"{FORMAT_VERSION}\0{sys.version}\0{pydantic.VERSION}\0{yaml.__version__}\0".encode())
    root = Path(kubernaut.__file__).resolve().parent
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                digest.update(f"{rel}\0{st.st_mtime_ns}\0{st.st_size}\0".encode())
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                found = sorted((e.name, e.stat().st_mtime_ns) for e in it if e.name.endswith(_DIST_SUFFIXES))
        except OSError:
            continue
        digest.update(f"{entry}\0{found!r}\0".encode())
    return digest.hexdigest()


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class _Bucket:
    """The cache file of one template directory and kind: file name -> (text digest, pickle)."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.entries: dict[str, Entry] = self._read()
        self.dirty = False

    def _read(self) -> dict[str, Entry]:
        try:
            with open(self.file, "rb") as f:
                st = os.fstat(f.fileno())
                if not _trusted(st) or not _trusted(os.stat(self.file.parent)):
                    log.warning("kubernaut: ignoring template cache %s (not private to this user)", self.file)
                    return {}
                data = pickle.load(f)
        except FileNotFoundError:
            return {}
        except Exception as exc:  # a torn or foreign file: start afresh
            log.debug("kubernaut: unreadable template cache %s: %s", self.file, exc)
            return {}
        if not isinstance(data, dict) or data.get("stamp") != code_stamp():
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def write(self) -> None:
        import tempfile  # only a miss writes

        directory = self.file.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = {"stamp": code_stamp(), "entries": self.entries}
        fd, tmp = tempfile.mkstemp(prefix=self.file.name + ".", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.file)
        except BaseException:
            with _suppress_os_error():
                os.unlink(tmp)
            raise
        self.dirty = False


def _trusted(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class _suppress_os_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> bool:
        return kind is not None and issubclass(kind, OSError)


class TemplateCache:
    """Validated templates by file and text; ``save`` writes what ``store`` added."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._buckets: dict[tuple[Path, str], _Bucket] = {}
        self._resolved: dict[Path, Path] = {}
        self.hits = self.misses = 0

    def _bucket(self, path: Path, kind: str) -> _Bucket:
        parent = self._resolved.get(path.parent)
        if parent is None:  # resolved once per directory, not once per file
            parent = self._resolved[path.parent] = path.parent.resolve()
        bucket = self._buckets.get((parent, kind))
        if bucket is None:
            name = hashlib.sha256(str(parent).encode("utf-8", "surrogatepass")).hexdigest()[:24]
            bucket = self._buckets[parent, kind] = _Bucket(self.directory / f"{name}.{kind}.pickle")
        return bucket

    def lookup(self, path: Path, text: str) -> Template | None:
        """The template this exact text of ``path`` validated into, or None."""
        from kubernaut.templates.model import Template

        template = self.get(path, text, TEMPLATE, Template)
        if template is not None:
            template._source = path  # as the loader sets it (the path as given)
        return template

    def store(self, path: Path, text: str, template: Template) -> None:
        """Remember a valid template of this text of ``path`` (written by ``save``)."""
        self.put(path, text, TEMPLATE, template)

    def get(self, path: Path, text: str, kind: str, type_: type[V]) -> V | None:
        """What this exact text of ``path`` gave, of ``kind`` (an instance of ``type_``), or None."""
        entry = self._bucket(path, kind).entries.get(path.name)
        if entry is not None and entry[0] == _digest(text):
            blob = entry[1]
            try:
                value = pickle.loads(blob)
            except Exception as exc:
                log.debug("kubernaut: unreadable template cache entry for %s: %s", path, exc)
                value = None
            if isinstance(value, type_):
                self.hits += 1
                return value
        self.misses += 1
        return None

    def put(self, path: Path, text: str, kind: str, value: object) -> None:
        """Remember what this text of ``path`` gave, of ``kind`` (written by ``save``)."""
        bucket = self._bucket(path, kind)
        bucket.entries[path.name] = (_digest(text), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        bucket.dirty = True

    def save(self) -> None:
        """Write the changed cache files, dropping entries of files that are gone. Never
        raises for a cache that cannot be written (a read-only home): it just stays cold."""
        for (parent, _), bucket in self._buckets.items():
            if not bucket.dirty:
                continue
            for name in [n for n in bucket.entries if not (parent / n).is_file()]:
                del bucket.entries[name]
            try:
                bucket.write()
            except OSError as exc:
                log.warning("kubernaut: cannot write the template cache %s: %s", bucket.file, exc)
