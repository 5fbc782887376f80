"""Which upstream step records a step reads (each one an XCom round trip)."""

from __future__ import annotations

import pytest

from kubernaut.rendering import referenced_names


@pytest.mark.parametrize(
    ("values", "conditions", "expected"),
    [
        ({"namespace": "demo", "deployment": "{{ alert.labels.deployment }}"}, [], frozenset()),
        ({"d": "{{ steps['assess-pod-state'].deployment }}"}, [], frozenset({"assess-pod-state"})),
        ({"d": "{{ steps.read_1.output }}"}, [], frozenset({"read_1"})),
        ({"d": ["x", {"y": "{{ steps['a']['b'] }}"}]}, ["steps['c'] is defined"], frozenset({"a", "c"})),
        ({}, ["{{ steps['c'].exists }}"], frozenset({"c"})),
        ({"d": "{{ 'steps' }}"}, [], frozenset()),
        ({"d": "{{ steps | length }}"}, [], None),
        ({"d": "{{ steps[alert.labels.x] }}"}, [], None),
        ({"d": "{{ steps.get('a') }}"}, [], None),
        ({"d": "{{ steps.items() }}"}, [], None),
        ({"d": "{% for k in steps %}{{ k }}{% endfor %}"}, [], None),
        ({"d": "{% set steps = 1 %}{{ steps }}"}, [], None),
        ({"d": "{{ steps['a'] "}, [], None),
    ],
)
def test_referenced_names(values, conditions, expected) -> None:
    assert referenced_names("steps", values, conditions) == expected
