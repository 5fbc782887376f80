"""Synthetic container logs: a few lines per container start/crash, kept per container instance."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

ContainerKey = tuple[str, str, str]  # (namespace, pod name, container name)
MAX_LINES = 1000


@dataclass
class ContainerLog:
    current: list[tuple[str, str]] = field(default_factory=list)  # (RFC3339Nano timestamp, line)
    previous: list[tuple[str, str]] | None = None  # the last terminated instance, if restarted


class LogBook:
    def __init__(self) -> None:
        self._logs: dict[ContainerKey, ContainerLog] = {}

    def write(self, namespace: str, pod: str, container: str, *lines: str) -> None:
        log = self._logs.setdefault((namespace, pod, container), ContainerLog())
        stamp = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        log.current.extend((stamp, line) for line in lines)
        del log.current[:-MAX_LINES]

    def restart(self, namespace: str, pod: str, container: str) -> None:
        """The container instance terminated: its log becomes `--previous`, a new one starts empty."""
        log = self._logs.setdefault((namespace, pod, container), ContainerLog())
        log.previous, log.current = log.current, []

    def forget_pod(self, namespace: str, pod: str) -> None:
        for key in [key for key in self._logs if key[:2] == (namespace, pod)]:
            del self._logs[key]

    def has_previous(self, namespace: str, pod: str, container: str) -> bool:
        log = self._logs.get((namespace, pod, container))
        return log is not None and log.previous is not None

    def read(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        timestamps: bool = False,
        limit_bytes: int | None = None,
    ) -> str:
        log = self._logs.get((namespace, pod, container), ContainerLog())
        entries = (log.previous or []) if previous else log.current
        if tail_lines is not None:
            entries = entries[-tail_lines:] if tail_lines > 0 else []
        text = "".join(f"{stamp} {line}\n" if timestamps else f"{line}\n" for stamp, line in entries)
        return text[:limit_bytes] if limit_bytes is not None else text
