"""The base of kubernaut's operators: Airflow's BaseOperator, default arguments merged once.

Airflow's operator metaclass wraps the ``__init__`` of every operator class in its
default-argument merge (the DAG's and task group's ``default_args`` and ``params``), so an
operator with an ``__init__`` of its own runs that merge twice per task: for its own keyword
arguments, then again in BaseOperator's. Ours (a step's spec, the template's name ...) never
come from ``default_args``: only BaseOperator's merge is needed. The DAG processor builds
every template's DAG at every parse, where the second merge cost 8 % (bench/parse.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.bases.operator import BaseOperatorMeta

F = TypeVar("F", bound=Callable[..., Any])


class _MergeOnceMeta(BaseOperatorMeta):
    @classmethod
    def _apply_defaults(cls, func: F) -> F:
        @functools.wraps(func)
        def init(self: BaseOperator, *args: Any, **kwargs: Any) -> None:
            if args:
                raise TypeError("Use keyword arguments when initializing operators")
            func(self, **kwargs)
            # BaseOperator's wrapper finishes an operator (task dependencies from XComArgs,
            # the "instantiated" mark) only when BaseOperator's __init__ is the class's own;
            # here the outermost __init__ is this one, so finish here, once.
            if self.__init__.__wrapped__ is func and not getattr(self, "_BaseOperator__from_mapped", False):  # type: ignore[misc]
                self._set_xcomargs_dependencies()
                object.__setattr__(self, "_BaseOperator__instantiated", True)

        return init  # type: ignore[return-value]


class KubernautOperator(BaseOperator, metaclass=_MergeOnceMeta):
    """BaseOperator for operators whose own arguments never come from ``default_args``."""
