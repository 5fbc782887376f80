"""Fixtures for the `kubernaut simulate` tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def fernet_key() -> Iterator[None]:
    """Templates with sensitive parameters (`secret-rotation`: rotate_secret) seal their undo
    records with Airflow's Fernet key even in the simulator and fail closed without one. The
    simulator's journal is thrown away, so any key will do (docs/simulate.md); a key already
    set (CI) is kept."""
    from airflow.sdk.crypto import get_fernet
    from cryptography.fernet import Fernet

    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("AIRFLOW__CORE__FERNET_KEY"):
            mp.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
        get_fernet.cache_clear()
        yield
    get_fernet.cache_clear()
