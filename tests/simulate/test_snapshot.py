"""The simulator's cluster diff shows what changed in a Secret, never what it holds."""

from __future__ import annotations

from kubernaut.simulate.snapshot import Snapshot, diff


def test_a_secret_change_is_shown_masked() -> None:
    key = ("Secret", "shop", "db")
    before = Snapshot(objects={key: {"data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}}})
    after = Snapshot(objects={key: {"data": {"password": "czNjcjN0", "token": "dG9rZW4="}}})
    lines = diff(before, after).lines()
    assert lines == [
        "~ Secret shop/db data.password: *** -> ***",
        "~ Secret shop/db data.token: (absent) -> ***",
        "~ Secret shop/db data.user: *** -> (removed)",
    ]
    text = "\n".join(lines)
    assert not any(v in text for v in ("aHVudGVyMg", "czNjcjN0", "dG9rZW4", "YWRtaW4"))


def test_other_objects_show_their_values() -> None:
    key = ("ConfigMap", "shop", "cfg")
    lines = diff(
        Snapshot(objects={key: {"data": {"a": "1"}}}), Snapshot(objects={key: {"data": {"a": "2"}}})
    ).lines()
    assert lines == ["~ ConfigMap shop/cfg data.a: 1 -> 2"]
