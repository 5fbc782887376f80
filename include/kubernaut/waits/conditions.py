"""Thresholds a polled value must satisfy: one definition for the steps that check a metric
in their own process and the Prometheus wait the triggerer runs."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class Condition(BaseModel):
    """A threshold a value must satisfy, e.g. ``{op: "<", value: 0.5}``. NaN never satisfies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float = Field(allow_inf_nan=False)

    def holds(self, value: float) -> bool:
        return not math.isnan(value) and _OPS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"
