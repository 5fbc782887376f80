from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kubernaut.intake.payload import PayloadError, parse_payload, parse_timestamp
from tests.intake.conftest import alert, payload


def test_a_real_alertmanager_payload_is_accepted() -> None:
    parsed = parse_payload(payload(alert(), alert(fingerprint="ffff000011112222")))
    assert [a.fingerprint for a in parsed.alerts] == ["0a1b2c3d4e5f6a7b", "ffff000011112222"]
    assert parsed.alerts[0].alertname == "KubePodCrashLooping"


def test_optional_fields_may_be_missing_and_unknown_fields_are_ignored() -> None:
    minimal = {
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "X"},
                "startsAt": "2024-05-01T12:00:00Z",
                "fingerprint": "ab",
                "futureField": 1,
            }
        ],
        "futureTop": {},
    }
    assert parse_payload(minimal).alerts[0].annotations == {}


def test_nanosecond_timestamps_and_offsets_parse_to_utc() -> None:
    assert parse_timestamp("2024-05-01T12:00:00.123456789Z") == datetime(2024, 5, 1, 12, 0, 0, 123456, UTC)
    assert parse_timestamp("2024-05-01T14:00:00+02:00") == datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["alerts"][0]["labels"].update(pod=3), "alerts[0].labels.pod"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda p: p["alerts"][0].update(fingerprint="a/b"), "alerts[0].fingerprint"),
        (lambda p: p["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint"),
        (lambda p: p["alerts"][0].update(status="pending"), "alerts[0].status"),
        (lambda p: p.update(alerts={}), "alerts"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.update(truncatedAlerts=True), "truncatedAlerts"),
        (lambda p: p.pop("status"), "status"),
    ],
)
def test_wrong_shapes_name_the_field(mutate: Any, field: str) -> None:
    body = payload()
    mutate(body)
    with pytest.raises(PayloadError) as err:
        parse_payload(body)
    assert any(p.startswith(f"{field}:") for p in err.value.problems), err.value.problems


@pytest.mark.parametrize("body", [[], "x", 3, None])
def test_a_body_that_is_not_an_object_is_rejected(body: Any) -> None:
    with pytest.raises(PayloadError, match=r"\(body\): expected a JSON object"):
        parse_payload(body)


def test_the_run_receives_the_alert_as_sent() -> None:
    sent = alert()
    conf = parse_payload(payload(sent)).alerts[0].to_conf()
    assert conf == sent
