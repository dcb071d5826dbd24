"""Alerting settings: receivers, routes, escalations, inhibition, timing, retries.

``AlertingSettings.from_config(section, path="alerting")`` validates the ``[alerting]``
table of ``spendwatch.toml`` and raises ``ConfigError`` naming the offending field
(``alerting.receivers[1].webhook_url``). Unknown keys are errors too (typos must not pass
silently). When the section is absent (``None`` or ``{}``) or lists no receivers, a single
``console`` receiver gets every alert.

Secrets (``webhook_url``, ``bot_token``, ``password``, webhook ``url`` and ``headers``) may
be written inline or as ``env:VAR_NAME``; they are resolved at load time, held in
``Secret`` objects and never printed. An ``env:`` variable that is unset stops the worker
naming it, unless the receiver says ``required = false``: then the receiver is disabled (a
warning at start-up, listed in ``/health``), routes lose it, and a route left without a
receiver is dropped (its alerts go on to the next route or the default receivers).

    [alerting]
    group_wait_s = 10            # wait before a new group's first notification
    group_interval_s = 60        # gap between two notifications of one group
    repeat_interval_s = 14400    # reminder for alerts still firing
    group_by = ["kind", "budget", "service"]   # default grouping labels
    active_ttl_s = 86400         # a firing alert neither resolved nor re-sent for this
                                 # long is stale: no more reminders
    default_receivers = ["console"]   # when no route matches (default: every receiver)
    failure_receivers = ["console"]   # who hears about undeliverable alerts
                                      # (default: every receiver but the failing one)
    digest_receivers = ["finance"]    # daily digest (default: every receiver)
    digest_at = "08:00"          # when the digest of the day before goes out, or "off"
    digest_timezone = "UTC"      # the zone of digest_at and of the digest's day
    default_inhibit = true       # a higher threshold mutes lower ones (same budget+period)

    [alerting.retry]
    max_attempts = 6             # tries before dead-lettering
    initial_backoff_s = 1.0      # then x backoff_factor per failure, up to max_backoff_s
    backoff_factor = 2.0
    max_backoff_s = 60.0
    dead_letter_retry_s = 600    # dead letters are retried at this slow cadence

    [[alerting.receivers]]
    name = "oncall-slack"
    type = "slack"
    required = false             # disabled (not fatal) while SLACK_WEBHOOK_URL is unset
    webhook_url = "env:SLACK_WEBHOOK_URL"     # or: bot_token = "env:SLACK_BOT_TOKEN"
                                              #     channel = "#spend-alerts"
                                              #     base_url = "http://127.0.0.1:PORT/api/"
    # timeout_s = 10, min_interval_s = 1.0 (Slack: one message per second per channel)

    [[alerting.receivers]]
    name = "finance"
    type = "email"
    to = ["finance@example.com"]
    from = "spendwatch@example.com"
    smtp_host = "smtp.example.com"
    smtp_port = 587
    starttls = true              # or tls = true for implicit TLS (port 465)
    username = "spendwatch"
    password = "env:SMTP_PASSWORD"

    [[alerting.receivers]]
    name = "hooks"
    type = "webhook"
    url = "https://example.com/spendwatch"
    headers = { Authorization = "env:HOOK_AUTH" }

    [[alerting.receivers]]
    name = "console"
    type = "console"             # stream = "stdout" | "stderr"

    [[alerting.routes]]          # tried in order; first match wins unless continue = true
    match = { severity = ["critical", "emergency"], kind = "threshold" }
    min_severity = "warning"     # optional
    receivers = ["oncall-slack"]
    continue = true
    group_by = ["budget"]        # group_wait_s / group_interval_s / repeat_interval_s too

    [[alerting.escalations]]     # every matching escalation adds its receivers
    match = { severity = "emergency" }
    receivers = ["finance"]

    [[alerting.inhibit]]         # Alertmanager-style inhibition rules
    source_match = { kind = "failure", severity = "critical" }
    target_match = { kind = "spike" }
    equal = ["service"]
    higher = "severity"          # optional: "severity" or a numeric label ("threshold")

Match keys: ``severity``, ``kind``, ``status`` or any label (``budget``, ``service``,
``period``, ``team`` ...); a value is a string or a list of accepted strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    model_validator,
)

from alerting.policy.inhibition import DEFAULT_RULE, InhibitRule
from alerting.policy.matchers import AlertMatch
from alerting.policy.retry import RetryPolicy
from alerting.policy.routing import GroupParams, Route
from schemas.alerts import SEVERITIES, AlertKind, Severity
from schemas.settings import (
    FieldError,
    OneOrMany,
    SecretRef,
    Section,
    Text,
    TimeZone,
    config_error,
    unique_names,
)

KINDS: Final = frozenset(get_args(AlertKind))
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
RECEIVER_TYPES: Final = ("console", "slack", "email", "webhook")
_HTTP_RE: Final = re.compile(r"^https?://[^\s/]+")


def _check(pattern: re.Pattern[str], message: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(message.format(value=value))
        return value

    return AfterValidator(check)


def _at_least(low: float, *, strict: bool = False) -> AfterValidator:
    def check(value: float) -> float:
        if value < low or (strict and value == low):
            raise ValueError("must be positive" if strict else f"must not be below {low:g}")
        return value

    return AfterValidator(check)


Seconds = Annotated[StrictFloat, _at_least(0)]
PositiveSeconds = Annotated[StrictFloat, _at_least(0, strict=True)]
Label = Annotated[Text, _check(_LABEL_RE, "invalid name {value!r}")]
Names = Annotated[tuple[Text, ...], OneOrMany]


def _http_url(secret_or_text: Any) -> None:
    # The value may be a secret: never echo it in the message.
    text = secret_or_text if isinstance(secret_or_text, str) else secret_or_text.reveal()
    if not _HTTP_RE.match(text):
        raise ValueError("must be an http:// or https:// URL")


# ---------------------------------------------------------------- receivers


class _Receiver(Section):
    name: Annotated[Text, _check(_NAME_RE, "use letters, digits, '-', '_' and '.'")]
    required: StrictBool = True

    def secrets(self) -> dict[str, Any]:
        """The receiver's secrets by field name (for the unset-variable rule)."""
        return {}

    @property
    def missing_variable(self) -> str | None:
        """The unset ``env:`` variable a secret of this receiver needs, if any."""
        for value in self.secrets().values():
            if value is not None and value.missing:
                return str(value.missing)
        return None

    @model_validator(mode="after")
    def _secrets_set(self) -> Any:
        if self.required:
            for key, value in self.secrets().items():
                if value is not None and value.missing:
                    raise FieldError(
                        tuple(key.split(".")), f"environment variable {value.missing} is not set"
                    )
        return self


class ConsoleReceiver(_Receiver):
    type: Literal["console"] = "console"
    stream: Literal["stdout", "stderr"] = "stdout"


class SlackReceiver(_Receiver):
    """Incoming webhook (``webhook_url``) or bot token + ``channel`` (``base_url`` optional)."""

    type: Literal["slack"] = "slack"
    webhook_url: SecretRef | None = None
    bot_token: SecretRef | None = None
    channel: Text | None = None
    base_url: Text | None = None
    timeout_s: PositiveSeconds = 10.0
    min_interval_s: Seconds = 1.0

    def secrets(self) -> dict[str, Any]:
        return {"webhook_url": self.webhook_url, "bot_token": self.bot_token}

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackReceiver:
        if self.webhook_url is None and self.bot_token is None:
            raise FieldError(("webhook_url",), "give webhook_url, or bot_token and channel")
        if self.webhook_url is not None and self.bot_token is not None:
            raise FieldError(("bot_token",), "give either webhook_url or bot_token, not both")
        if self.webhook_url is not None:
            if not self.webhook_url.missing:
                _at(("webhook_url",), _http_url, self.webhook_url)
            if self.channel is not None:
                raise FieldError(("channel",), "a webhook posts to its own channel")
        if self.bot_token is not None and self.channel is None:
            raise FieldError(("channel",), "is required with bot_token")
        if self.base_url is not None:
            _at(("base_url",), _http_url, self.base_url)
        return self


def _address(value: str) -> str:
    if "@" not in value or any(c in value for c in "\r\n,;<> "):
        raise ValueError(f"not an email address: {value!r}")
    return value


def _smtp_port(data: Any) -> Any:
    if isinstance(data, dict) and "smtp_port" not in data:
        port = 465 if data.get("tls") is True else 587 if data.get("starttls") is True else 25
        return {**data, "smtp_port": port}
    return data


class EmailReceiver(_Receiver):
    type: Literal["email"] = "email"
    to: Annotated[tuple[Annotated[Text, AfterValidator(_address)], ...], Field(min_length=1)]
    from_addr: Annotated[Text, AfterValidator(_address)] = Field(alias="from")
    smtp_host: Text
    smtp_port: Annotated[StrictInt, _at_least(1)] = 25
    tls: StrictBool = False
    starttls: StrictBool = False
    username: Text | None = None
    password: SecretRef | None = None
    timeout_s: PositiveSeconds = 10.0
    validate_certs: StrictBool = True

    _default_port = model_validator(mode="before")(_smtp_port)

    def secrets(self) -> dict[str, Any]:
        return {"password": self.password}

    @model_validator(mode="after")
    def _pairs(self) -> EmailReceiver:
        if self.tls and self.starttls:
            raise FieldError(("starttls",), "choose tls (implicit) or starttls, not both")
        if self.smtp_port > 65535:
            raise FieldError(("smtp_port",), "must be a port number 1-65535")
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise FieldError((missing,), "username and password go together")
        return self


class WebhookReceiver(_Receiver):
    type: Literal["webhook"] = "webhook"
    url: SecretRef
    headers: dict[str, SecretRef] = {}
    timeout_s: PositiveSeconds = 10.0

    def secrets(self) -> dict[str, Any]:
        return {"url": self.url, **{f"headers.{k}": v for k, v in self.headers.items()}}

    @model_validator(mode="after")
    def _url(self) -> WebhookReceiver:
        if not self.url.missing:
            _at(("url",), _http_url, self.url)
        return self


Receiver = ConsoleReceiver | SlackReceiver | EmailReceiver | WebhookReceiver
AnyReceiver = Annotated[Receiver, Field(discriminator="type")]


def _at(loc: tuple[str, ...], check: Any, value: Any) -> None:
    try:
        check(value)
    except ValueError as exc:
        raise FieldError(loc, str(exc)) from None


# ---------------------------------------------------------------- routes and rules

_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "severity": frozenset(SEVERITIES),
    "kind": KINDS,
    "status": frozenset({"firing", "resolved"}),
}


def _match(raw: Any) -> tuple[tuple[str, frozenset[str]], ...]:
    if not isinstance(raw, dict):
        raise ValueError("must be a table")
    pairs = []
    for key, value in raw.items():
        if not _LABEL_RE.match(key):
            raise FieldError((key,), "invalid label name")
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(
            isinstance(v, str) and v.strip() for v in values
        ):
            raise FieldError((key,), "must be a string or a list of non-empty strings")
        if not values:
            raise FieldError((key,), "needs at least one value")
        allowed = _ALLOWED.get(key)
        for v in values:
            if allowed is not None and v not in allowed:
                raise FieldError((key,), f"{v!r} is not one of {sorted(allowed)}")
        pairs.append((key, frozenset(v.strip() for v in values)))
    return tuple(sorted(pairs, key=lambda p: p[0]))


MatchSpec = Annotated[tuple[tuple[str, frozenset[str]], ...], PlainValidator(_match)]


class _Grouping(Section):
    group_by: tuple[Label, ...] | None = None
    group_wait_s: Seconds | None = None
    group_interval_s: PositiveSeconds | None = None
    repeat_interval_s: PositiveSeconds | None = None

    def params(self, base: GroupParams) -> GroupParams:
        return GroupParams(
            group_by=base.group_by if self.group_by is None else self.group_by,
            group_wait_s=base.group_wait_s if self.group_wait_s is None else self.group_wait_s,
            group_interval_s=base.group_interval_s
            if self.group_interval_s is None
            else self.group_interval_s,
            repeat_interval_s=base.repeat_interval_s
            if self.repeat_interval_s is None
            else self.repeat_interval_s,
        )


class EscalationConfig(_Grouping):
    """``[[alerting.escalations]]``: every matching escalation adds its receivers."""

    name: Text | None = None
    match: MatchSpec = ()
    min_severity: Severity | None = None
    receivers: Annotated[Names, Field(min_length=1)]

    def build(self, base: GroupParams, receivers: tuple[str, ...]) -> Route:
        return Route(
            match=AlertMatch(equals=self.match, min_severity=self.min_severity),
            receivers=receivers,
            params=self.params(base),
            continue_=getattr(self, "continue_", False),
            name=self.name or "",
        )


class RouteConfig(EscalationConfig):
    """``[[alerting.routes]]``: tried in order; the first match wins unless ``continue``."""

    continue_: StrictBool = Field(default=False, alias="continue")


class InhibitConfig(Section):
    name: Text | None = None
    source_match: MatchSpec
    target_match: MatchSpec
    equal: tuple[Label, ...] = ()
    higher: Annotated[Text, _check(_LABEL_RE, "must be 'severity' or a label name")] | None = None

    def build(self) -> InhibitRule:
        return InhibitRule(
            source=AlertMatch(self.source_match),
            target=AlertMatch(self.target_match),
            equal=self.equal,
            higher=self.higher,
            name=self.name or "",
        )


class RetryConfig(Section):
    max_attempts: Annotated[StrictInt, _at_least(1)] = 6
    initial_backoff_s: Seconds = 1.0
    backoff_factor: Annotated[StrictFloat, _at_least(1)] = 2.0
    max_backoff_s: Seconds = 60.0
    dead_letter_retry_s: PositiveSeconds = 600.0

    def build(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


def _digest_at(value: Any) -> time | None:
    if value == "off":
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        hours, minutes = (int(x) for x in value.split(":"))
        return time(hours, minutes)
    except ValueError:
        raise ValueError('must be "HH:MM" or "off"') from None


# ---------------------------------------------------------------- the section


@dataclass(frozen=True, slots=True)
class DisabledReceiver:
    """A ``required = false`` receiver left out because its secret's variable is unset."""

    name: str
    type: str
    variable: str

    def describe(self) -> str:
        return f"receiver {self.name!r} ({self.type}) is disabled: {self.variable} is not set"


@dataclass(frozen=True, slots=True)
class AlertingSettings:
    """Validated alerting settings; build with ``from_config`` (or ``default()``)."""

    receivers: tuple[Receiver, ...]
    routes: tuple[Route, ...] = ()
    escalations: tuple[Route, ...] = ()
    inhibit_rules: tuple[InhibitRule, ...] = (DEFAULT_RULE,)
    defaults: GroupParams = field(
        default_factory=lambda: GroupParams(("kind", "budget", "service"), 10.0, 60.0, 14400.0)
    )
    default_receivers: tuple[str, ...] = ()
    failure_receivers: tuple[str, ...] | None = None
    digest_receivers: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    active_ttl_s: float = 86400.0
    # The daily digest (of the day that just ended) goes out at this local time; None = off.
    digest_at: time | None = time(8, 0)
    digest_timezone: str = "UTC"
    disabled: tuple[DisabledReceiver, ...] = ()

    def receiver(self, name: str) -> Receiver:
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def receiver_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.receivers)

    @classmethod
    def default(cls) -> AlertingSettings:
        """One console receiver for everything."""
        return AlertingConfig().build()

    @classmethod
    def from_config(
        cls,
        section: Mapping[str, Any] | None,
        path: str = "alerting",
        *,
        environ: Mapping[str, str] | None = None,
    ) -> AlertingSettings:
        """Validate the ``[alerting]`` table. Raises ``ConfigError(field_path, message)``;
        ``environ`` (default ``os.environ``) resolves ``env:VAR`` secrets."""
        try:
            config = AlertingConfig.model_validate(section or {}, context={"environ": environ})
        except ValidationError as exc:
            raise config_error(exc, AlertingConfig, prefix=(path,)) from None
        return config.build()


class AlertingConfig(Section):
    """The ``[alerting]`` table as written in the file; :meth:`build` gives the settings."""

    group_wait_s: Seconds = 10.0
    group_interval_s: PositiveSeconds = 60.0
    repeat_interval_s: PositiveSeconds = 14400.0
    group_by: tuple[Label, ...] = ("kind", "budget", "service")
    active_ttl_s: PositiveSeconds = 86400.0
    default_receivers: Names | None = None
    failure_receivers: Names | None = None
    digest_receivers: Names | None = None
    digest_at: Annotated[time | None, PlainValidator(_digest_at)] = time(8, 0)
    digest_timezone: TimeZone = "UTC"
    default_inhibit: StrictBool = True
    retry: RetryConfig = RetryConfig()
    receivers: Annotated[list[AnyReceiver], unique_names()] = []
    routes: list[RouteConfig] = []
    escalations: list[EscalationConfig] = []
    inhibit: list[InhibitConfig] = []

    @model_validator(mode="after")
    def _known_receivers(self) -> AlertingConfig:
        known = tuple(r.name for r in self.receivers) or ("console",)
        refs: list[tuple[tuple[str | int, ...], tuple[str, ...] | None]] = [
            (("default_receivers",), self.default_receivers),
            (("failure_receivers",), self.failure_receivers),
            (("digest_receivers",), self.digest_receivers),
        ]
        refs += [(("routes", i, "receivers"), r.receivers) for i, r in enumerate(self.routes)]
        refs += [
            (("escalations", i, "receivers"), r.receivers) for i, r in enumerate(self.escalations)
        ]
        for loc, names in refs:
            for j, name in enumerate(names or ()):
                if name not in known:
                    raise FieldError((*loc, j), f"unknown receiver {name!r} (have {list(known)})")
        return self

    def build(self) -> AlertingSettings:
        """The settings, without the ``required = false`` receivers whose secret is unset."""
        disabled = tuple(
            DisabledReceiver(r.name, r.type, r.missing_variable)
            for r in self.receivers
            if r.missing_variable is not None
        )
        gone = {d.name for d in disabled}
        receivers = tuple(r for r in self.receivers if r.name not in gone)
        if not receivers:
            receivers = (ConsoleReceiver(name="console"),)
        known = tuple(r.name for r in receivers)

        def keep(names: tuple[str, ...] | None) -> tuple[str, ...]:
            return tuple(n for n in names or () if n in known)

        base = GroupParams(
            self.group_by, self.group_wait_s, self.group_interval_s, self.repeat_interval_s
        )
        routes = tuple(r.build(base, keep(r.receivers)) for r in self.routes if keep(r.receivers))
        escalations = tuple(
            r.build(base, keep(r.receivers)) for r in self.escalations if keep(r.receivers)
        )
        rules = [rule.build() for rule in self.inhibit]
        if self.default_inhibit:
            rules.insert(0, DEFAULT_RULE)
        return AlertingSettings(
            receivers=receivers,
            routes=routes,
            escalations=escalations,
            inhibit_rules=tuple(rules),
            defaults=base,
            default_receivers=keep(self.default_receivers) or known,
            failure_receivers=None
            if self.failure_receivers is None
            else keep(self.failure_receivers),
            digest_receivers=keep(self.digest_receivers) or known,
            retry=self.retry.build(),
            active_ttl_s=self.active_ttl_s,
            digest_at=self.digest_at,
            digest_timezone=self.digest_timezone,
            disabled=disabled,
        )
