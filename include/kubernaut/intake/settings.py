"""Intake configuration from the environment (the same in the plugin and in ``kubernaut serve``)."""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubernaut.history import DEFAULT_CONN_ID
from kubernaut.paths import templates_dir

TOKEN_ENV = "KUBERNAUT_WEBHOOK_TOKEN"
TOKEN_FILE_ENV = "KUBERNAUT_WEBHOOK_TOKEN_FILE"
DEFAULT_MAX_BODY_BYTES = 1 << 20  # Alertmanager payloads are KBs; 1 MiB leaves room for big groups


class TokenSource:
    """The expected bearer token: literal or a file (re-read when it changes, for rotation)."""

    def __init__(self, token: str | None = None, path: Path | None = None) -> None:
        self._token = token.encode() if token else None
        self._path = path
        self._cached: tuple[float, bytes | None] = (-1.0, None)

    def current(self) -> bytes | None:
        if self._token is not None:
            return self._token
        if self._path is None:
            return None
        try:
            mtime = self._path.stat().st_mtime
            if mtime != self._cached[0]:
                self._cached = (mtime, self._path.read_bytes().strip() or None)
        except OSError:
            return None
        return self._cached[1]

    def accepts(self, authorization: str | None) -> bool:
        """Constant-time check of an ``Authorization: Bearer <token>`` header."""
        expected = self.current()
        if expected is None or not authorization:
            return False  # no token configured: fail closed
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode("utf-8", "surrogateescape"), expected)


@dataclass(frozen=True)
class IntakeSettings:
    templates_dir: Path
    token: TokenSource
    history_conn_id: str = DEFAULT_CONN_ID
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_failures: int = 3
    db_threads: int = 4  # the intake's own pool for history queries (see service.HistoryPool)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IntakeSettings:
        env = os.environ if env is None else env
        token_file = env.get(TOKEN_FILE_ENV)
        return cls(
            templates_dir=Path(env["KUBERNAUT_TEMPLATES_DIR"])
            if env.get("KUBERNAUT_TEMPLATES_DIR")
            else templates_dir(),
            token=TokenSource(env.get(TOKEN_ENV) or None, Path(token_file) if token_file else None),
            history_conn_id=env.get("KUBERNAUT_HISTORY_CONN_ID", DEFAULT_CONN_ID),
            max_body_bytes=int(env.get("KUBERNAUT_WEBHOOK_MAX_BYTES", DEFAULT_MAX_BODY_BYTES)),
            max_failures=int(env.get("KUBERNAUT_MAX_CONSECUTIVE_FAILURES", 3)),
        )
