"""The action contract: plain Python, testable without Airflow.

An action is a class with a pydantic parameter model. The operator renders the
template parameters, validates them with ``Params``, then calls, in order:
``precheck`` -> ``run`` -> (the wait ``run`` asked for, then ``after_wait``) -> ``verify``.
A mutating action returns, from ``run``, the prior state it changed (``ActionResult.undo``);
``undo`` restores it and must be safe to call twice.

An action never sleeps to wait: ``run`` returns ``ActionResult(wait=ctx.wait(...))`` (a
``kubernaut.waits.WaitSpec``) and the operator defers the step to the triggerer, which runs
the wait without holding a worker slot; elsewhere (the test-kit, ``run_step``) the same wait
runs in the calling process.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kubernaut import policy as rules
from kubernaut.errors import KubernautError
from kubernaut.kube import errors as kube_errors
from kubernaut.policy import Bounds
from kubernaut.target import Target
from kubernaut.waits.spec import WaitOutcome, WaitSpec, Wording

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from kubernaut.config import KubernautConfig

ActionKind = Literal["kubernetes", "monitoring", "custom"]
ACTION_KINDS: tuple[ActionKind, ...] = ("kubernetes", "monitoring", "custom")

log = logging.getLogger(__name__)


class ActionError(KubernautError):
    """An action failed for a reason a person can act on; the message says which."""


class PreconditionFailed(ActionError):
    """The action refused to start: nothing was changed."""


class VerificationFailed(ActionError):
    """The action ran but its effect could not be confirmed in time."""


class NotRestorable(ActionError):
    """Raised by ``undo`` when the prior state cannot be brought back (a PVC cannot shrink,
    an evicted or replaced pod cannot return). The rollback records the entry as
    ``not_restorable`` with this message as its reason; the run ends
    ``partially_rolled_back`` and is escalated."""


# --- errors from the layers below, as the actions report them ----------------------------------
# The helpers below the actions (kubernaut.kube, kubernaut.waits) and the policy rules raise their
# own errors; an action's methods raise ActionErrors. The translation happens here only: every
# method of the contract (``Action.run``, ``undo``, ...) passes what it raises through
# ``as_action_error``. The translated classes keep the names the history records
# ("NotFound: ...") and stay instances of the original classes, so ``except NotFound`` (the kube
# one) still matches after the boundary.


class NotFound(ActionError, kube_errors.NotFound):
    """A 404 seen by an action."""


class Conflict(ActionError, kube_errors.Conflict):
    """A 409 seen by an action (after ``retry_on_conflict`` gave up, if it retried)."""


class PolicyViolation(PreconditionFailed, rules.PolicyViolation):
    """A mutating step refused by the safety policy: nothing has changed yet."""


_SAME_NAME: dict[type[KubernautError], type[ActionError]] = {}


def _action_error_class(cls: type[KubernautError]) -> type[ActionError]:
    if issubclass(cls, kube_errors.NotFound):
        return NotFound
    if issubclass(cls, kube_errors.Conflict):
        return Conflict
    if issubclass(cls, kube_errors.NotReady):
        return VerificationFailed  # a read-after-write confirmation that did not come in time
    if issubclass(cls, rules.PolicyViolation):
        return PolicyViolation
    if cls.__module__ == kube_errors.__name__:
        return ActionError  # any other API error: an ActionError, as it always was
    # The services' errors (ServiceError, ConnectionProblem, ...): an ActionError of the same
    # name that is still one of them (``except ServiceError`` matches; the history shows the name).
    if cls not in _SAME_NAME:
        _SAME_NAME[cls] = type(
            cls.__name__, (ActionError, cls), {"__module__": __name__, "__doc__": cls.__doc__}
        )
    return _SAME_NAME[cls]


def as_action_error(exc: KubernautError) -> ActionError:
    """The ActionError an action raises for ``exc`` (same message, same attributes, same cause
    and traceback); an ActionError is returned as it is."""
    if isinstance(exc, ActionError):
        return exc
    cls = _action_error_class(type(exc))
    translated = cls.__new__(cls)
    Exception.__init__(translated, *exc.args)
    translated.__dict__.update(exc.__dict__)
    translated.__cause__, translated.__suppress_context__ = exc.__cause__, exc.__suppress_context__
    return translated.with_traceback(exc.__traceback__)


_Args = ParamSpec("_Args")
_Result = TypeVar("_Result")


def translated(method: Callable[_Args, _Result]) -> Callable[_Args, _Result]:
    """``method`` with the errors of the layers below turned into ActionErrors."""
    if getattr(method, "_translates_errors", False):
        return method

    @functools.wraps(method)
    def wrapper(*args: _Args.args, **kwargs: _Args.kwargs) -> _Result:
        try:
            return method(*args, **kwargs)
        except KubernautError as exc:
            if isinstance(exc, ActionError):
                raise
            error = as_action_error(exc)
            raise error from error.__cause__  # the original cause (an ApiException), as before

    wrapper._translates_errors = True  # type: ignore[attr-defined]
    return wrapper


SENSITIVE = "sensitive"


def sensitive(default: Any = ..., **kwargs: Any) -> Any:
    """A parameter whose value is a secret: masked in logs, never stored in XCom or the
    history in clear. Use as ``token: str = sensitive(description="...")``."""
    return Field(default, json_schema_extra={SENSITIVE: True}, **kwargs)


class ActionParams(BaseModel):
    """Base for parameter models: unknown names are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def sensitive_fields(cls) -> frozenset[str]:
        """Names of the parameters declared with ``sensitive()``."""
        return frozenset(
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(SENSITIVE)
        )


class NoParams(ActionParams):
    pass


@dataclass
class ActionResult:
    """What a step did: ``output`` is shown to people and later steps; ``undo`` restores."""

    output: dict[str, Any] = field(default_factory=dict)
    undo: dict[str, Any] | None = None
    changed: bool = False
    # What to wait for before the step is done (``ActionContext.wait``); None: nothing.
    wait: WaitSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "undo": self.undo, "changed": self.changed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionResult:
        output = dict(data.get("output") or {})
        return cls(output=output, undo=data.get("undo"), changed=bool(data.get("changed")))


def wait_error(outcome: WaitOutcome) -> ActionError:
    """The error a wait that did not end ``done`` fails its step with: the effect not seen in
    time (VerificationFailed, with what was seen last) or a poll that failed (ActionError)."""
    if outcome.status in ("timeout", "failed"):
        return VerificationFailed(outcome.message)
    return ActionError(outcome.message or f"wait ended {outcome.status}")


def default_kube_client(conn_id: str) -> ApiClient:
    """Cluster access goes only through the cncf-kubernetes provider's KubernetesHook
    (its client's timestamps read by the standard library: kubernaut.kube.timestamps)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    from kubernaut.kube.timestamps import fast_timestamps

    return fast_timestamps(KubernetesHook(conn_id=conn_id).api_client)


@dataclass
class ActionContext:
    """Everything an action may use besides its parameters."""

    dry_run: bool = False
    timeout: float = 300.0
    kube_conn_id: str = "kubernetes_default"
    logger: logging.Logger | Any = field(default_factory=lambda: log)  # Airflow task loggers too
    kube_client_factory: Callable[[str], ApiClient] = default_kube_client
    started: float = field(default_factory=time.monotonic)
    poll_interval: float = 1.0
    # Waits poll every poll_interval at first, then less often, up to this (None: no growth).
    max_poll_interval: float | None = None
    # For an explicit ``rollback:`` action: the undo record of the step it rolls back.
    undo_record: dict[str, Any] | None = None
    # Durable undo journal (wired by the operator to the history DB): ``prior_undo`` is the
    # record an earlier, interrupted attempt of this same step saved; ``save_undo`` persists
    # a record before the change is made. One record per step, written once: the first wins
    # and a different later one raises (kubernaut.history.store.check_same_undo).
    prior_undo: dict[str, Any] | None = None
    save_undo: Callable[[dict[str, Any]], None] = field(default=lambda record: None, repr=False)
    _api_client: ApiClient | None = field(default=None, repr=False)
    _config: KubernautConfig | None = field(default=None, repr=False)

    @property
    def config(self) -> KubernautConfig:
        """Policy, script allow-list and connection ids (loaded on first use)."""
        if self._config is None:
            from kubernaut.config import load_config

            self._config = load_config()
        return self._config

    @property
    def api_client(self) -> ApiClient:
        if self._api_client is None:
            self._api_client = self.kube_client_factory(self.kube_conn_id)
        return self._api_client

    def remember_prior(self, fresh: dict[str, Any]) -> dict[str, Any]:
        """Call right before the step's first change, with its *complete* undo record
        (everything ``undo`` needs, e.g. the prior state of every object the step will touch):
        returns the record to use after persisting it. An earlier attempt's record wins, since
        its change may already be made; calling again (a conflict retry) saves the same record."""
        record = self.prior_undo if self.prior_undo is not None else fresh
        if not self.dry_run:
            self.save_undo(record)
            self.prior_undo = record  # a conflict retry within this attempt keeps the first record
        return record

    def remaining(self) -> float:
        """Seconds left of the step's timeout (never negative)."""
        return max(0.0, self.timeout - (time.monotonic() - self.started))

    def wait(
        self,
        kind: str,
        args: dict[str, Any],
        *,
        what: str,
        within: float | None = None,
        wording: Wording = "reached",
    ) -> WaitSpec:
        """A wait of ``kind`` (``kubernaut.waits.driver.KINDS``) for ``run`` to return, bounded by
        ``within`` seconds and the step's remaining time; ``what`` names it in messages."""
        limit = self.remaining() if within is None else max(0.0, min(within, self.remaining()))
        started = time.time()
        return WaitSpec(
            kind=kind,
            args=args,
            deadline=started + limit,
            poll=self.poll_interval,
            max_poll=self.max_poll_interval,
            what=what,
            wording=wording,
            started=started,
        )


P = TypeVar("P", bound=ActionParams)

# The contract's methods: in a subclass, each is wrapped by ``translated`` (the one place where
# errors of the layers below become ActionErrors), so callers (the operators, the rollback, the
# test-kit, tests) see ActionErrors whichever method they call.
CONTRACT_METHODS = (
    "precheck",
    "run",
    "after_wait",
    "verify",
    "undo",
    "targets",
    "bounds",
    "is_mutating",
    "no_undo_reason",
    "start",
    "pending_wait",
    "finish",
    "execute",
)


class Action(ABC, Generic[P]):
    """One remediation action. Subclasses set ``kind``, ``name``, ``Params``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in CONTRACT_METHODS:
            method = cls.__dict__.get(name)
            if inspect.isfunction(method):  # plain methods only (a staticmethod keeps its kind)
                setattr(cls, name, translated(method))

    kind: ClassVar[ActionKind]
    name: ClassVar[str]
    Params: ClassVar[type[ActionParams]] = NoParams
    mutating: ClassVar[bool] = False
    summary: ClassVar[str] = ""
    # For the catalogue table (`kubernaut actions`): what it changes, its undo, its dry run.
    changes: ClassVar[str] = "nothing"
    undo_doc: ClassVar[str] = "—"
    dry_run_doc: ClassVar[str] = "same as a real run (read-only)"

    def precheck(self, ctx: ActionContext, params: P) -> None:
        """Refuse to start (raise PreconditionFailed) before anything changes."""

    @abstractmethod
    def run(self, ctx: ActionContext, params: P) -> ActionResult:
        """Do the work; a mutating action records the prior state in ``undo`` first."""

    def after_wait(
        self, ctx: ActionContext, params: P, result: ActionResult, outcome: WaitOutcome
    ) -> ActionResult:
        """The wait ``run`` asked for has ended (in this process or in the triggerer, maybe
        hours later: use only ``result`` and ``params``, never state kept on ``self``). By
        default a wait that did not end ``done`` fails the step; an action whose output comes
        from the wait overrides this to merge ``outcome.detail`` into it."""
        if not outcome.done:
            raise wait_error(outcome)
        return result

    def verify(self, ctx: ActionContext, params: P, result: ActionResult) -> None:
        """Post-validation: raise VerificationFailed if the effect did not happen."""

    def undo(self, ctx: ActionContext, params: P, record: dict[str, Any]) -> dict[str, Any]:
        """Restore the prior state in ``record``; calling it twice must be harmless."""
        raise ActionError(f"action {self.kind}/{self.name} has no undo")

    @classmethod
    def has_undo(cls) -> bool:
        return cls.undo is not Action.undo

    def is_mutating(self, params: P) -> bool:
        """Whether this call changes something: then the safety policy applies, the history
        journal is required and the change is journaled first. By default the class's
        ``mutating``; an action whose effect depends on its parameters overrides it
        (``http_request``: by method)."""
        return self.mutating

    def no_undo_reason(self, params: P) -> str:
        """Journaled before a mutating call of an action without ``undo`` runs."""
        return f"{self.kind}/{self.name} has no undo"

    def targets(self, ctx: ActionContext, params: P) -> list[Target]:
        """The objects a mutating step changes, for the safety policy. By default the
        namespace named by a ``namespace`` parameter, so its protection always applies."""
        namespace = getattr(params, "namespace", None)
        return [Target("Namespace", None, namespace)] if isinstance(namespace, str) and namespace else []

    def bounds(self, ctx: ActionContext, params: P) -> Bounds:
        """Replica counts, resource factors and node cordons the step sets, for the policy."""
        return Bounds()

    @translated
    def start(self, ctx: ActionContext, params: P) -> ActionResult:
        """Policy, pre-check and run: everything before the wait."""
        mutating = self.is_mutating(params)
        if mutating:
            check_policy(ctx, self, params)  # dry-run too: a rehearsal must show the refusal
        self.precheck(ctx, params)
        if mutating and not self.has_undo():
            # Journaled before the change, so the rollback knows it happened and reports it
            # not restorable (or runs the template's `rollback:` action).
            ctx.remember_prior({"no_undo": self.no_undo_reason(params)})
        return self.run(ctx, params)

    def pending_wait(self, ctx: ActionContext, params: P, result: ActionResult) -> WaitSpec | None:
        """The wait still to run after ``start``. A dry run of a change changed nothing, so
        nothing is awaited (as nothing is verified); a read-only check waits in a dry run too."""
        if result.wait is None or (ctx.dry_run and self.is_mutating(params)):
            return None
        return result.wait

    @translated
    def finish(
        self, ctx: ActionContext, params: P, result: ActionResult, outcome: WaitOutcome | None
    ) -> ActionResult:
        """After the wait (``outcome``; None when there was none): ``after_wait``, then ``verify``."""
        if outcome is not None:
            result = self.after_wait(ctx, params, result, outcome)
        result.wait = None
        if not ctx.dry_run:
            self.verify(ctx, params, result)
        return result

    @translated
    def execute(self, ctx: ActionContext, params: P) -> ActionResult:
        """The full sequence for one step, waiting in this process: policy, pre-check, run,
        the wait, post-validation."""
        result = self.start(ctx, params)
        wait = self.pending_wait(ctx, params, result)
        outcome = None
        if wait is not None:
            from kubernaut.waits.driver import wait_here

            outcome = wait_here(wait, ctx.kube_conn_id, ctx.logger)
        return self.finish(ctx, params, result, outcome)


def _labels_of(ctx: ActionContext, target: Target) -> dict[str, str] | None:
    """The target's labels (None: it does not exist)."""
    from kubernaut.kube.objects import find_object

    obj = find_object(ctx.api_client, target.kind, target.namespace or None, target.name)
    if obj is None:
        return None
    labels: dict[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def _unschedulable_nodes(ctx: ActionContext) -> set[str]:
    from kubernaut.kube.clients import core

    with kube_errors.api_errors("nodes"):
        nodes = core(ctx).list_node().items
    return {n.metadata.name for n in nodes if n.spec and n.spec.unschedulable}


def _readable(kind: str) -> bool:
    from kubernaut.kube.objects import CUSTOM_KINDS, KINDS

    return kind in KINDS or kind in CUSTOM_KINDS


@translated
def check_policy(ctx: ActionContext, action: Action[Any], params: ActionParams) -> None:
    """Consult the safety policy (``kubernaut.policy``) about what the step would change,
    reading from the cluster only what the next rule needs; raise PolicyViolation (a
    PreconditionFailed) on a refusal. Called before ``precheck``, in a dry run too."""
    policy = ctx.config.policy
    targets = action.targets(ctx, params)
    for target in targets:
        rules.check_protection(policy, target)
        if rules.needs_labels(policy, target):
            readable = _readable(target.kind)
            labels = _labels_of(ctx, target) if readable else None
            rules.check_labels(policy, target, labels, readable=readable)
    what = rules.describe_change(targets, f"{action.kind}/{action.name}")
    bounds = action.bounds(ctx, params)
    rules.check_numbers(policy, bounds, what)
    if bounds.cordon_nodes:
        rules.check_cordons(policy, bounds, what, _unschedulable_nodes(ctx))
