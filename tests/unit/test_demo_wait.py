"""Polling a busy api-server: a timed-out request is "not yet", not the end of the wait."""

from __future__ import annotations

import httpx
import pytest

from kubernaut.demo import wait


def test_a_request_that_times_out_is_polled_again() -> None:
    answers: list[object] = [httpx.ReadTimeout("timed out"), None, "ready"]

    def predicate() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait(predicate, 5, "the api-server", interval=0.01) == "ready"


def test_the_deadline_names_the_last_transport_problem() -> None:
    def predicate() -> object:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(
        RuntimeError, match=r"waiting for the api-server \(last: ConnectError: connection refused\)"
    ):
        wait(predicate, 0.05, "the api-server", interval=0.01)


def test_other_errors_are_not_swallowed() -> None:
    def predicate() -> object:
        raise KeyError("task_instances")

    with pytest.raises(KeyError):
        wait(predicate, 5, "the api-server", interval=0.01)
