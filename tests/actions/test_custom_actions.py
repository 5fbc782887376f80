from __future__ import annotations

import logging
import time

import pytest

from kubernaut.actions import ActionContext, ActionError, registry


def test_wait_sleeps_and_respects_the_step_timeout() -> None:
    cls = registry.get("custom", "wait")
    ctx = ActionContext(timeout=5)
    started = time.monotonic()
    result = cls().execute(ctx, cls.Params.model_validate({"duration": "300ms"}))
    assert 0.3 <= time.monotonic() - started < 2 and result.output == {"waited_seconds": 0.3}
    with pytest.raises(ActionError, match="exceeds the step's remaining"):
        cls().execute(ctx, cls.Params.model_validate({"duration": "1m"}))


def test_log_writes_message_and_fields(caplog: pytest.LogCaptureFixture) -> None:
    cls = registry.get("custom", "log")
    ctx = ActionContext(logger=logging.getLogger("kubernaut.test"))
    with caplog.at_level(logging.INFO, logger="kubernaut.test"):
        result = cls().execute(ctx, cls.Params.model_validate({"message": "hello", "fields": {"a": "1"}}))
    assert result.output == {"message": "hello", "level": "info", "a": "1"}
    assert "hello" in caplog.text
