"""The base of kubernaut's operators: Airflow's BaseOperator, default arguments merged once.

Airflow's operator metaclass wraps the ``__init__`` of every operator class in its
default-argument merge (the DAG's and task group's ``default_args`` and ``params``), so an
operator with an ``__init__`` of its own runs that merge twice per task: for its own keyword
arguments, then again in BaseOperator's. Ours (a step's spec, the template's name ...) never
come from ``default_args``: only BaseOperator's merge is needed. The DAG processor builds
every template's DAG at every parse, where the second merge cost 8 % (bench/parse.py).

For the same reason ``__setattr__`` is BaseOperator's, less its lookup of a ``_convert_<name>``
method for every attribute set (~60 per task, a fifth of building an operator): which names
have a converter is found once per class. ``tests/unit/test_operator_build.py`` checks that
both build the same operator and that Airflow's ``__setattr__`` is still the one copied here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.bases.operator import BaseOperatorMeta

F = TypeVar("F", bound=Callable[..., Any])
CONVERTER_PREFIX = "_convert_"
_converted: dict[type, frozenset[str]] = {}  # per operator class: the names with a converter


def converted_names(cls: type) -> frozenset[str]:
    """The attribute names BaseOperator.__setattr__ passes through a converter for ``cls``."""
    names = _converted.get(cls)
    if names is None:
        names = _converted[cls] = frozenset(
            n[len(CONVERTER_PREFIX) :] for n in dir(cls) if n.startswith(CONVERTER_PREFIX)
        )
    return names


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

    def __setattr__(self, key: str, value: Any) -> None:
        # BaseOperator.__setattr__ (Airflow 3.3), the converter looked up only where one exists.
        if key in converted_names(type(self)):
            converter = getattr(self, CONVERTER_PREFIX + key, None)
            if converter:
                value = converter(value)
        object.__setattr__(self, key, value)
        if self._BaseOperator__from_mapped or self._lock_for_execution:  # type: ignore[attr-defined]
            return
        init_kwargs = self._BaseOperator__init_kwargs  # type: ignore[attr-defined]
        if key in init_kwargs:
            init_kwargs[key] = value
        if self._BaseOperator__instantiated and key in self.template_fields:  # type: ignore[attr-defined]
            self._set_xcomargs_dependency(key, value)
