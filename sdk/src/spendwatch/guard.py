"""The budget guard: block, degrade or allow a call *before* it is made, from local state.

    guard = spendwatch.guard(
        budgets={"growth-llm": {"model": "gpt-4o*"}},    # or ["growth-llm"]: covers every call
        action="degrade", degrade_to={"gpt-4o": "gpt-4o-mini"},
        per_request_limit_usd="0.50",
    )
    client = spendwatch.instrument(openai.OpenAI(), guard=guard)

Every check is local and instant: the statuses come from a background follower of
``spendwatch.budget-status.v1`` (see :mod:`spendwatch.status`); no network per call.

What happens when a covered budget is ``exhausted`` (spent >= its effective limit, in a period
that has not reset yet):

- ``block``: :class:`BudgetExceeded` is raised naming the budget, spent, limit and reset time;
- ``degrade``: the model is swapped for its cheaper one from ``degrade_to``; a model without
  an entry passes (it is taken to be a cheap one already);
- ``allow``: the call passes (counted in ``stats``).

``action`` / ``degrade_to`` default to what the worker publishes for the budget
(``on_exhausted`` / ``degrade_to`` in its config), else ``block``.

Per-request limit (the guard's ``per_request_limit_usd``, else the smallest one the covered
budgets publish): the request's worst-case cost is estimated before the call by
:mod:`spendwatch.estimate` (tokenizer or chars/4, the request's max output tokens, a price
map); a request above it raises :class:`PerRequestLimitExceeded`. A model without a known price
is not checked (counted as ``unpriced``).

Fail-open: a budget with no status yet, or whose period has ended since its last status, does
not stop a call; with ``max_status_age_s`` set, neither does any status while the broker has
not answered for that long. The guard never raises anything but these two exceptions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from . import estimate
from .errors import ConfigurationError, SpendwatchError
from .money import format_usd, nusd_to_usd, pattern_matches, usd_to_nusd
from .status import TOPIC, BudgetStatus, StatusSource, shared_follower

Action = Literal["block", "degrade", "allow"]
_ACTIONS: Final = ("block", "degrade", "allow")
_MATCH_KEYS: Final = frozenset({"provider", "model"})


def _money(amount: Decimal) -> str:
    return format_usd(usd_to_nusd(amount))


class BudgetExceeded(SpendwatchError):
    """A covered budget is exhausted and the guard blocks the call.

    Attributes: ``budget``, ``spent_usd`` / ``limit_usd`` (``Decimal``), ``reset_at`` (aware
    datetime, when the period resets), ``override_until``, ``provider``, ``model``.
    """

    def __init__(
        self,
        budget: str,
        *,
        spent_usd: Decimal,
        limit_usd: Decimal,
        reset_at: datetime,
        provider: str | None,
        model: str | None,
        override_until: datetime | None = None,
        message: str | None = None,
    ) -> None:
        self.budget = budget
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.reset_at = reset_at
        self.override_until = override_until
        self.provider = provider
        self.model = model
        super().__init__(
            message
            or (
                f"spendwatch: budget {budget!r} is exhausted: spent {_money(spent_usd)} of "
                f"{_money(limit_usd)}; it resets at {reset_at.isoformat()}. Blocked a call to "
                f"{provider or '?'} {model or '?'}. An operator can raise the limit for a while: "
                f"spendwatch budgets override {budget} --limit-usd AMOUNT --for 2h"
            )
        )


class PerRequestLimitExceeded(BudgetExceeded):
    """One request's estimated worst-case cost is above the per-request limit.

    Extra attributes: ``estimated_cost_usd``, ``per_request_limit_usd``, ``input_tokens``,
    ``output_tokens`` (the estimate's), ``method`` (how input tokens were counted).
    """

    def __init__(
        self,
        budget: str,
        *,
        estimated_cost_usd: Decimal,
        per_request_limit_usd: Decimal,
        provider: str | None,
        model: str | None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        method: str = "",
        status: BudgetStatus | None = None,
    ) -> None:
        self.estimated_cost_usd = estimated_cost_usd
        self.per_request_limit_usd = per_request_limit_usd
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.method = method
        tokens = (
            f" ({input_tokens} input tokens by {method} + up to {output_tokens} output tokens)"
            if input_tokens is not None
            else ""
        )
        super().__init__(
            budget,
            spent_usd=status.spent_usd if status else Decimal(0),
            limit_usd=status.limit_usd if status else Decimal(0),
            reset_at=status.reset_at if status else datetime.max.replace(tzinfo=UTC),
            provider=provider,
            model=model,
            message=(
                f"spendwatch: a call to {provider or '?'} {model or '?'} would cost up to "
                f"${estimated_cost_usd.normalize():f}{tokens}, above the per-request limit "
                f"${per_request_limit_usd.normalize():f} of {budget!r}. Lower max_tokens or "
                f"the prompt size, or use a cheaper model."
            ),
        )


def _patterns(value: object, where: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if (
        not isinstance(values, Sequence)
        or not values
        or not all(isinstance(v, str) and v for v in values)
    ):
        raise ConfigurationError(where, "must be a name, a 'prefix*' or a list of them")
    return tuple(values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which calls a budget covers for this guard (empty = every call)."""

    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    def covers(self, provider: str | None, model: str | None) -> bool:
        if self.providers and not pattern_matches(self.providers, provider):
            return False
        return not (self.models and not pattern_matches(self.models, model))


@dataclass(frozen=True, slots=True)
class Decision:
    """What the guard decided for one call: the model to use and why."""

    model: str | None
    original_model: str | None
    action: Literal["allow", "degrade"] = "allow"
    budget: str | None = None  # the exhausted budget behind a degrade or an allow-over
    estimate: estimate.Estimate | None = None

    @property
    def degraded(self) -> bool:
        return self.model != self.original_model


@dataclass
class GuardStats:
    """Counters since the guard was made (read them, don't write)."""

    checked: int = 0
    blocked: int = 0
    degraded: int = 0
    allowed_over: int = 0  # exhausted but action=allow
    per_request_blocked: int = 0
    unpriced: int = 0  # a per-request limit applied but the model has no price
    unknown: int = 0  # a covered budget had no status (fail-open)
    stale: int = 0  # statuses ignored because the broker has been silent too long
    by_budget: dict[str, int] = field(default_factory=dict)


class Guard:
    """Made by :func:`guard`. ``check`` and ``before_call`` are thread-safe and instant."""

    def __init__(
        self,
        budgets: Mapping[str, Coverage],
        *,
        follower: StatusSource | None,
        action: Action | None = None,
        degrade_to: Mapping[str, str] | None = None,
        per_request_limit_nusd: int | None = None,
        prices: Mapping[str, estimate.Price] | None = None,
        default_output_tokens: int = 4096,
        max_status_age_s: float | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.budgets = dict(budgets)
        self.follower = follower
        self.action = action
        self.degrade_to = dict(degrade_to or {})
        self.per_request_limit_nusd = per_request_limit_nusd
        self.prices = dict(prices) if prices is not None else estimate.price_map()
        self.default_output_tokens = default_output_tokens
        self.max_status_age_s = max_status_age_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self.stats = GuardStats()
        self._lock = threading.Lock()

    # -- state --------------------------------------------------------------------------

    def status(self, budget: str) -> BudgetStatus | None:
        """The latest status of ``budget`` this guard sees (None if unknown)."""
        return self.follower.get(budget) if self.follower is not None else None

    def _count(self, name: str, budget: str | None = None) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)
            if budget is not None and name in ("blocked", "degraded", "per_request_blocked"):
                self.stats.by_budget[budget] = self.stats.by_budget.get(budget, 0) + 1

    def _live_statuses(self, provider: str | None, model: str | None) -> list[BudgetStatus]:
        """Statuses of the budgets covering this call that still say something now."""
        if not self.budgets or self.follower is None:
            return []
        self.follower.ensure_running()
        if self.max_status_age_s is not None:
            age = self.follower.age_s
            if age is None or age > self.max_status_age_s:
                self._count("stale")
                return []
        now = self._clock()
        live: list[BudgetStatus] = []
        for name, coverage in self.budgets.items():
            if not coverage.covers(provider, model):
                continue
            status = self.follower.get(name)
            if status is None:
                self._count("unknown")
            elif status.current_at(now):
                live.append(status)
        return live

    # -- decisions ----------------------------------------------------------------------

    def _decide(self, provider: str | None, model: str | None) -> Decision:
        current = model
        decision = Decision(model=model, original_model=model)
        for status in self._live_statuses(provider, model):
            if not status.exhausted:
                continue
            if current != model and not self.budgets[status.budget].covers(provider, current):
                continue  # already degraded out of this budget's scope
            action = self.action or status.on_exhausted or "block"
            if action == "block":
                self._count("blocked", status.budget)
                raise BudgetExceeded(
                    status.budget,
                    spent_usd=status.spent_usd,
                    limit_usd=status.limit_usd,
                    reset_at=status.reset_at,
                    override_until=status.override_until,
                    provider=provider,
                    model=current,
                )
            if action == "degrade":
                mapping = {**status.degrade_to, **self.degrade_to}
                cheaper = mapping.get(current) if current is not None else None
                if cheaper is not None and cheaper != current:
                    current = cheaper
                    decision = Decision(
                        model=current, original_model=model, action="degrade", budget=status.budget
                    )
                    self._count("degraded", status.budget)
                continue
            self._count("allowed_over")
            if decision.budget is None:
                decision = Decision(model=current, original_model=model, budget=status.budget)
        return decision

    def _per_request_limit(self, provider: str | None, model: str | None) -> tuple[int, str] | None:
        """(limit nusd, budget name) that applies to this call, if any."""
        if self.per_request_limit_nusd is not None:
            return self.per_request_limit_nusd, "guard"
        best: tuple[int, str] | None = None
        if self.follower is None:
            return None
        for name, coverage in self.budgets.items():
            if not coverage.covers(provider, model):
                continue
            status = self.follower.get(name)
            limit = status.per_request_limit_nusd if status is not None else None
            if limit is not None and (best is None or limit < best[0]):
                best = (limit, name)
        return best

    def _enforce_per_request(
        self,
        provider: str | None,
        model: str | None,
        cost_nusd: int | None,
        est: estimate.Estimate | None,
    ) -> None:
        rule = self._per_request_limit(provider, model)
        if rule is None:
            return
        limit, budget = rule
        if cost_nusd is None:
            self._count("unpriced")
            return
        if cost_nusd > limit:
            self._count("per_request_blocked", budget)
            raise PerRequestLimitExceeded(
                budget,
                estimated_cost_usd=nusd_to_usd(cost_nusd),
                per_request_limit_usd=nusd_to_usd(limit),
                provider=provider,
                model=model,
                input_tokens=est.input_tokens if est else None,
                output_tokens=est.output_tokens if est else None,
                method=est.method if est else "",
                status=self.status(budget),
            )

    def check(
        self,
        provider: str | None,
        model: str | None,
        estimated_cost_usd: Decimal | str | int | None = None,
    ) -> Decision:
        """Decide for a call to ``provider`` / ``model``; returns the model to use.

        ``estimated_cost_usd`` (if known) is checked against the per-request limit. Raises
        :class:`BudgetExceeded` (block) or :class:`PerRequestLimitExceeded`.
        """
        self._count("checked")
        decision = self._decide(provider, model)
        if estimated_cost_usd is not None:
            if isinstance(estimated_cost_usd, float):
                estimated_cost_usd = str(estimated_cost_usd)
            cost = usd_to_nusd(Decimal(str(estimated_cost_usd)))
            self._enforce_per_request(provider, decision.model, cost, None)
        return decision

    def estimate(
        self, provider: str | None, model: str | None, request_kwargs: Mapping[str, Any]
    ) -> estimate.Estimate:
        """The worst-case cost estimate of a request (see :mod:`spendwatch.estimate`)."""
        return estimate.estimate_request(
            model, request_kwargs, self.prices, default_output_tokens=self.default_output_tokens
        )

    def before_call(
        self, provider: str | None, model: str | None, request_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """The hook ``instrument(client, guard=...)`` calls before each covered call.

        Returns the request kwargs to send: the same object, or a copy with ``model`` swapped
        when degrading. Raises :class:`BudgetExceeded` / :class:`PerRequestLimitExceeded`.
        """
        self._count("checked")
        decision = self._decide(provider, model)
        if self._per_request_limit(provider, decision.model) is not None:
            est = self.estimate(provider, decision.model, request_kwargs)
            self._enforce_per_request(provider, decision.model, est.cost_nusd, est)
        if decision.degraded:
            return {**request_kwargs, "model": decision.model}
        return request_kwargs

    def close(self) -> None:
        """Stop this guard's own follower (a shared one keeps running for other guards)."""
        from . import status

        follower = self.follower
        if isinstance(follower, status.BudgetStatusFollower) and all(
            follower is not shared for shared in status._shared.values()
        ):
            follower.stop()


def _bootstrap(explicit: str | None) -> str:
    if explicit:
        return explicit
    from . import config, runtime

    active = runtime._runtime
    if active is not None:
        return active.settings.bootstrap_servers
    return os.environ.get(config.ENV_BOOTSTRAP_SERVERS) or config.DEFAULT_BOOTSTRAP_SERVERS


def _coverage(budgets: object) -> dict[str, Coverage]:
    if budgets is None:
        return {}
    if isinstance(budgets, str):
        return {budgets: Coverage()}
    if isinstance(budgets, Mapping):
        result: dict[str, Coverage] = {}
        for name, rule in budgets.items():
            if rule is None:
                result[str(name)] = Coverage()
                continue
            if not isinstance(rule, Mapping):
                raise ConfigurationError(f"budgets[{name!r}]", "must be a {provider, model} rule")
            unknown = set(rule) - _MATCH_KEYS
            if unknown:
                raise ConfigurationError(
                    f"budgets[{name!r}]", f"unknown keys {sorted(unknown)} (use provider, model)"
                )
            result[str(name)] = Coverage(
                providers=_patterns(rule["provider"], f"budgets[{name!r}].provider")
                if "provider" in rule
                else (),
                models=_patterns(rule["model"], f"budgets[{name!r}].model")
                if "model" in rule
                else (),
            )
        return result
    if isinstance(budgets, Sequence) and all(isinstance(b, str) and b for b in budgets):
        return {b: Coverage() for b in budgets}
    raise ConfigurationError("budgets", "must be a budget name, a list of names or {name: rule}")


def guard(
    budgets: str | Sequence[str] | Mapping[str, Mapping[str, Any] | None] | None = None,
    *,
    action: Action | None = None,
    degrade_to: Mapping[str, str] | None = None,
    per_request_limit_usd: Decimal | str | int | None = None,
    prices: Mapping[str, tuple[object, object]] | None = None,
    bootstrap_servers: str | None = None,
    topic: str = TOPIC,
    default_output_tokens: int = 4096,
    max_status_age_s: float | None = None,
    follower: StatusSource | None = None,
) -> Guard:
    """Make a :class:`Guard` (see the module docstring).

    ``budgets``: the budget names this guard enforces - a name, a list (each covers every
    call) or ``{name: {"provider": ..., "model": "gpt-4o*"}}`` (the calls each covers).
    ``prices``: ``{"model": ("input USD/Mtok", "output USD/Mtok")}`` over the defaults.
    ``bootstrap_servers``: else the SDK's configured ones, else ``SPENDWATCH_BOOTSTRAP_SERVERS``.
    The budget-status follower is shared per (bootstrap, topic) in the process unless one is
    passed. Raises ``ConfigurationError`` naming the bad argument; makes no network call.
    """
    coverage = _coverage(budgets)
    if not coverage and per_request_limit_usd is None:
        raise ConfigurationError(
            "budgets", "name the budgets to enforce or a per_request_limit_usd"
        )
    if action is not None and action not in _ACTIONS:
        raise ConfigurationError("action", f"must be one of {_ACTIONS}, got {action!r}")
    if degrade_to is not None and (
        not isinstance(degrade_to, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in degrade_to.items())
    ):
        raise ConfigurationError("degrade_to", "must map model names to cheaper model names")
    limit_nusd: int | None = None
    if per_request_limit_usd is not None:
        if isinstance(per_request_limit_usd, float):
            per_request_limit_usd = str(per_request_limit_usd)
        try:
            amount = Decimal(str(per_request_limit_usd))
        except ArithmeticError:
            raise ConfigurationError("per_request_limit_usd", "must be a decimal amount") from None
        if not amount.is_finite() or amount <= 0:
            raise ConfigurationError("per_request_limit_usd", "must be a positive amount")
        limit_nusd = usd_to_nusd(amount)
    try:
        price_table = estimate.price_map(prices)
    except (ArithmeticError, ValueError, TypeError, IndexError) as exc:
        raise ConfigurationError("prices", f"{exc}; use {{model: ('2.50', '10.00')}}") from None
    if isinstance(default_output_tokens, bool) or not isinstance(default_output_tokens, int):
        raise ConfigurationError("default_output_tokens", "must be an int")
    if coverage and follower is None:
        follower = shared_follower(_bootstrap(bootstrap_servers), topic)
    if limit_nusd is not None:
        # Load the tokenizer off the caller's path (about 0.3 s once).
        threading.Thread(target=estimate.preload_tokenizer, daemon=True).start()
    return Guard(
        coverage,
        follower=follower,
        action=action,
        degrade_to=degrade_to,
        per_request_limit_nusd=limit_nusd,
        prices=price_table,
        default_output_tokens=default_output_tokens,
        max_status_age_s=max_status_age_s,
    )
