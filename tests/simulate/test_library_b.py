"""Shard 1 of the shipped library's scenarios (tests/simulate/shipped.py)."""

from __future__ import annotations

from tests.simulate.shipped import assert_all_pass, shard, simulate


def test_shard_1_scenarios_pass() -> None:
    templates = shard(1)
    assert templates  # the library is large enough for three shards
    code, report = simulate(templates)
    assert_all_pass(code, report, templates)
