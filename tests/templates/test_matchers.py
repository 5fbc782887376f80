from __future__ import annotations

import pytest

from kubernaut.templates import AlertMatcher, Matcher


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ('severity!="info"', {}, True),  # a missing label is the empty string
        ('severity=~"warning|critical"', {"severity": "warning"}, True),
        ('severity=~"warn"', {"severity": "warning"}, False),  # regexes are fully anchored
        ('namespace!~"kube-.*"', {"namespace": "kube-system"}, False),
        ('namespace!~"kube-.*"', {"namespace": "prod"}, True),
        ("team = 'sre'", {"team": "sre"}, True),
        ("team=sre", {"team": "sre"}, True),
        (r'path="a\"b"', {"path": 'a"b'}, True),
        (r'host=~"web\.prod"', {"host": "web.prod"}, True),
        (r'host=~"web\.prod"', {"host": "webxprod"}, False),
        ('env=""', {}, True),
    ],
)
def test_matcher_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.parse(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("severity", "expected label<op>"),
        ('severity=="x"', "expected label<op>"),
        ('9lives="x"', "expected label<op>"),
        ('ns=~"(unclosed"', "invalid regular expression"),
    ],
)
def test_bad_matchers(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Matcher.parse(text)


def test_matcher_prints_in_prometheus_syntax() -> None:
    assert str(Matcher.parse("a=~'x|y\"'")) == 'a=~"x|y\\""'
    assert Matcher.parse(str(Matcher.parse("a=~'x|y\"'"))).value == 'x|y"'


def test_alert_matcher_from_name_or_mapping() -> None:
    assert AlertMatcher.model_validate("PodFailed").matches({"alertname": "PodFailed"})
    m = AlertMatcher.model_validate({"alertname": "PodFailed", "matchers": ['severity="critical"']})
    assert m.matches({"alertname": "PodFailed", "severity": "critical"})
    assert not m.matches({"alertname": "PodFailed", "severity": "warning"})
    assert not m.matches({"alertname": "PodCrashLoop", "severity": "critical"})
