"""Alerting settings: receivers, routes, escalations, inhibition, timing, retries.

``AlertingSettings.from_config(section, path="alerting")`` validates the ``[alerting]``
table of ``spendwatch.toml`` and raises ``ConfigError`` naming the offending field
(``alerting.receivers[1].webhook_url``). Unknown keys are errors too (typos must not pass
silently). When the section is absent (``None`` or ``{}``) or lists no receivers, a single
``console`` receiver gets every alert.

Secrets (``webhook_url``, ``bot_token``, ``password``, webhook ``url`` and ``headers``) may
be written inline or as ``env:VAR_NAME``; they are resolved at load time, held in
``Secret`` objects and never printed.

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
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerting.policy.inhibition import DEFAULT_RULE, InhibitRule
from alerting.policy.matchers import AlertMatch
from alerting.policy.retry import RetryPolicy
from alerting.policy.routing import GroupParams, Route
from alerting.secrets import Secret, resolve_secret
from schemas.alerts import SEVERITIES, AlertKind, Severity
from schemas.errors import ConfigError

KINDS: Final = frozenset(get_args(AlertKind))
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
RECEIVER_TYPES: Final = ("console", "slack", "email", "webhook")


# ---------------------------------------------------------------- receivers


@dataclass(frozen=True, slots=True)
class ConsoleReceiver:
    name: str
    stream: Literal["stdout", "stderr"] = "stdout"
    type: Literal["console"] = "console"


@dataclass(frozen=True, slots=True)
class SlackReceiver:
    """Incoming webhook (``webhook_url``) or bot token + ``channel`` (``base_url`` optional)."""

    name: str
    webhook_url: Secret | None = None
    bot_token: Secret | None = None
    channel: str | None = None
    base_url: str | None = None
    timeout_s: float = 10.0
    min_interval_s: float = 1.0
    type: Literal["slack"] = "slack"


@dataclass(frozen=True, slots=True)
class EmailReceiver:
    name: str
    to: tuple[str, ...]
    from_addr: str
    smtp_host: str
    smtp_port: int
    tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: Secret | None = None
    timeout_s: float = 10.0
    validate_certs: bool = True
    type: Literal["email"] = "email"


@dataclass(frozen=True, slots=True)
class WebhookReceiver:
    name: str
    url: Secret
    headers: tuple[tuple[str, Secret], ...] = ()
    timeout_s: float = 10.0
    type: Literal["webhook"] = "webhook"


Receiver = ConsoleReceiver | SlackReceiver | EmailReceiver | WebhookReceiver


# ---------------------------------------------------------------- settings


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
        return cls(
            receivers=(ConsoleReceiver("console"),),
            default_receivers=("console",),
            digest_receivers=("console",),
        )

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
        return _Parser(environ).settings(section, path)


# ---------------------------------------------------------------- parsing

_TOP_KEYS: Final = frozenset(
    {
        "group_wait_s",
        "group_interval_s",
        "repeat_interval_s",
        "group_by",
        "active_ttl_s",
        "default_receivers",
        "failure_receivers",
        "digest_receivers",
        "digest_at",
        "digest_timezone",
        "default_inhibit",
        "retry",
        "receivers",
        "routes",
        "escalations",
        "inhibit",
    }
)
_RECEIVER_KEYS: Final[dict[str, frozenset[str]]] = {
    "console": frozenset({"name", "type", "stream"}),
    "slack": frozenset(
        {
            "name",
            "type",
            "webhook_url",
            "bot_token",
            "channel",
            "base_url",
            "timeout_s",
            "min_interval_s",
        }
    ),
    "email": frozenset(
        {
            "name",
            "type",
            "to",
            "from",
            "smtp_host",
            "smtp_port",
            "tls",
            "starttls",
            "username",
            "password",
            "timeout_s",
            "validate_certs",
        }
    ),
    "webhook": frozenset({"name", "type", "url", "headers", "timeout_s"}),
}
_ROUTE_KEYS: Final = frozenset(
    {
        "name",
        "match",
        "min_severity",
        "receivers",
        "continue",
        "group_by",
        "group_wait_s",
        "group_interval_s",
        "repeat_interval_s",
    }
)
_INHIBIT_KEYS: Final = frozenset({"name", "source_match", "target_match", "equal", "higher"})
_RETRY_KEYS: Final = frozenset(
    {"max_attempts", "initial_backoff_s", "backoff_factor", "max_backoff_s", "dead_letter_retry_s"}
)


class _Parser:
    def __init__(self, environ: Mapping[str, str] | None) -> None:
        self.environ = environ

    # -- primitives

    @staticmethod
    def table(value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise ConfigError(path, "must be a table")
        return value

    @staticmethod
    def keys(section: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
        for key in section:
            if key not in allowed:
                raise ConfigError(f"{path}.{key}", f"unknown setting (allowed: {sorted(allowed)})")

    @staticmethod
    def number(section: Mapping[str, Any], key: str, path: str, default: float) -> float:
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}.{key}", "must be a number")
        if value < 0:
            raise ConfigError(f"{path}.{key}", "must not be negative")
        return float(value)

    @staticmethod
    def boolean(section: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = section.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{path}.{key}", "must be true or false")
        return value

    @staticmethod
    def string(
        section: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> str | None:
        value = section.get(key)
        if value is None:
            if required:
                raise ConfigError(f"{path}.{key}", "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}.{key}", "must be a non-empty string")
        return value.strip()

    @staticmethod
    def strings(
        value: Any, path: str, *, pattern: re.Pattern[str] | None = None
    ) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise ConfigError(path, "must be a list of strings")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(f"{path}[{i}]", "must be a non-empty string")
            if pattern is not None and not pattern.match(item):
                raise ConfigError(f"{path}[{i}]", f"invalid name {item!r}")
            out.append(item.strip())
        return tuple(out)

    def secret(self, section: Mapping[str, Any], key: str, path: str) -> Secret | None:
        if key not in section:
            return None
        return resolve_secret(section[key], f"{path}.{key}", self.environ)

    @staticmethod
    def http_url(value: str, path: str) -> None:
        # The value may be a secret: never echo it in the message.
        if not re.match(r"^https?://[^\s/]+", value):
            raise ConfigError(path, "must be an http:// or https:// URL")

    # -- receivers

    def receiver(self, raw: Any, path: str) -> Receiver:
        section = self.table(raw, path)
        name = self.string(section, "name", path, required=True)
        assert name is not None
        if not _NAME_RE.match(name):
            raise ConfigError(f"{path}.name", "use letters, digits, '-', '_' and '.'")
        rtype = section.get("type")
        if rtype not in RECEIVER_TYPES:
            raise ConfigError(f"{path}.type", f"must be one of {list(RECEIVER_TYPES)}")
        self.keys(section, _RECEIVER_KEYS[rtype], path)
        if rtype == "console":
            stream = section.get("stream", "stdout")
            if stream not in ("stdout", "stderr"):
                raise ConfigError(f"{path}.stream", "must be 'stdout' or 'stderr'")
            return ConsoleReceiver(name, stream)
        if rtype == "slack":
            return self.slack(section, name, path)
        if rtype == "email":
            return self.email(section, name, path)
        return self.webhook(section, name, path)

    def slack(self, section: Mapping[str, Any], name: str, path: str) -> SlackReceiver:
        webhook = self.secret(section, "webhook_url", path)
        token = self.secret(section, "bot_token", path)
        channel = self.string(section, "channel", path)
        base_url = self.string(section, "base_url", path)
        if webhook is None and token is None:
            raise ConfigError(f"{path}.webhook_url", "give webhook_url, or bot_token and channel")
        if webhook is not None and token is not None:
            raise ConfigError(f"{path}.bot_token", "give either webhook_url or bot_token, not both")
        if webhook is not None:
            self.http_url(webhook.reveal(), f"{path}.webhook_url")
            if channel is not None:
                raise ConfigError(f"{path}.channel", "a webhook posts to its own channel")
        if token is not None and channel is None:
            raise ConfigError(f"{path}.channel", "is required with bot_token")
        if base_url is not None:
            self.http_url(base_url, f"{path}.base_url")
        timeout = self.number(section, "timeout_s", path, 10.0)
        if timeout <= 0:
            raise ConfigError(f"{path}.timeout_s", "must be positive")
        return SlackReceiver(
            name=name,
            webhook_url=webhook,
            bot_token=token,
            channel=channel,
            base_url=base_url,
            timeout_s=timeout,
            min_interval_s=self.number(section, "min_interval_s", path, 1.0),
        )

    def email(self, section: Mapping[str, Any], name: str, path: str) -> EmailReceiver:
        if "to" not in section:
            raise ConfigError(f"{path}.to", "is required")
        to = self.strings(section["to"], f"{path}.to")
        if not to:
            raise ConfigError(f"{path}.to", "needs at least one address")
        for i, addr in enumerate(to):
            if "@" not in addr or any(c in addr for c in "\r\n,;<> "):
                raise ConfigError(f"{path}.to[{i}]", f"not an email address: {addr!r}")
        from_addr = self.string(section, "from", path, required=True)
        assert from_addr is not None
        if "@" not in from_addr or any(c in from_addr for c in "\r\n"):
            raise ConfigError(f"{path}.from", f"not an email address: {from_addr!r}")
        host = self.string(section, "smtp_host", path, required=True)
        assert host is not None
        tls = self.boolean(section, "tls", path, False)
        starttls = self.boolean(section, "starttls", path, False)
        if tls and starttls:
            raise ConfigError(f"{path}.starttls", "choose tls (implicit) or starttls, not both")
        port_raw = section.get("smtp_port", 465 if tls else (587 if starttls else 25))
        if isinstance(port_raw, bool) or not isinstance(port_raw, int) or not 0 < port_raw < 65536:
            raise ConfigError(f"{path}.smtp_port", "must be a port number 1-65535")
        username = self.string(section, "username", path)
        password = self.secret(section, "password", path)
        if (username is None) != (password is None):
            missing = "password" if password is None else "username"
            raise ConfigError(f"{path}.{missing}", "username and password go together")
        timeout = self.number(section, "timeout_s", path, 10.0)
        if timeout <= 0:
            raise ConfigError(f"{path}.timeout_s", "must be positive")
        return EmailReceiver(
            name=name,
            to=to,
            from_addr=from_addr,
            smtp_host=host,
            smtp_port=port_raw,
            tls=tls,
            starttls=starttls,
            username=username,
            password=password,
            timeout_s=timeout,
            validate_certs=self.boolean(section, "validate_certs", path, True),
        )

    def webhook(self, section: Mapping[str, Any], name: str, path: str) -> WebhookReceiver:
        url = self.secret(section, "url", path)
        if url is None:
            raise ConfigError(f"{path}.url", "is required")
        self.http_url(url.reveal(), f"{path}.url")
        headers_raw = self.table(section.get("headers", {}), f"{path}.headers")
        headers = tuple(
            (str(k), resolve_secret(v, f"{path}.headers.{k}", self.environ))
            for k, v in headers_raw.items()
        )
        timeout = self.number(section, "timeout_s", path, 10.0)
        if timeout <= 0:
            raise ConfigError(f"{path}.timeout_s", "must be positive")
        return WebhookReceiver(name=name, url=url, headers=headers, timeout_s=timeout)

    # -- matching and routes

    def match(self, raw: Any, path: str) -> tuple[tuple[str, frozenset[str]], ...]:
        section = self.table(raw, path)
        pairs = []
        for key, value in section.items():
            kpath = f"{path}.{key}"
            if not _LABEL_RE.match(key):
                raise ConfigError(kpath, "invalid label name")
            values = (value,) if isinstance(value, str) else self.strings(value, kpath)
            if not values:
                raise ConfigError(kpath, "needs at least one value")
            allowed: frozenset[str] | None = None
            if key == "severity":
                allowed = frozenset(SEVERITIES)
            elif key == "kind":
                allowed = KINDS
            elif key == "status":
                allowed = frozenset({"firing", "resolved"})
            if allowed is not None:
                for v in values:
                    if v not in allowed:
                        raise ConfigError(kpath, f"{v!r} is not one of {sorted(allowed)}")
            pairs.append((key, frozenset(values)))
        return tuple(sorted(pairs, key=lambda p: p[0]))

    def severity(self, section: Mapping[str, Any], key: str, path: str) -> Severity | None:
        value = section.get(key)
        if value is None:
            return None
        if value not in SEVERITIES:
            raise ConfigError(f"{path}.{key}", f"must be one of {list(SEVERITIES)}")
        return value  # type: ignore[no-any-return]

    def params(self, section: Mapping[str, Any], path: str, base: GroupParams) -> GroupParams:
        group_by = base.group_by
        if "group_by" in section:
            group_by = self.strings(section["group_by"], f"{path}.group_by", pattern=_LABEL_RE)
        params = GroupParams(
            group_by=group_by,
            group_wait_s=self.number(section, "group_wait_s", path, base.group_wait_s),
            group_interval_s=self.number(section, "group_interval_s", path, base.group_interval_s),
            repeat_interval_s=self.number(
                section, "repeat_interval_s", path, base.repeat_interval_s
            ),
        )
        if params.group_interval_s <= 0:
            raise ConfigError(f"{path}.group_interval_s", "must be positive")
        if params.repeat_interval_s <= 0:
            raise ConfigError(f"{path}.repeat_interval_s", "must be positive")
        return params

    def receiver_refs(self, value: Any, path: str, known: tuple[str, ...]) -> tuple[str, ...]:
        names = self.strings(value, path)
        for i, n in enumerate(names):
            if n not in known:
                raise ConfigError(f"{path}[{i}]", f"unknown receiver {n!r} (have {list(known)})")
        return names

    def route(
        self, raw: Any, path: str, known: tuple[str, ...], base: GroupParams, *, escalation: bool
    ) -> Route:
        section = self.table(raw, path)
        allowed = _ROUTE_KEYS - {"continue"} if escalation else _ROUTE_KEYS
        self.keys(section, allowed, path)
        if "receivers" not in section:
            raise ConfigError(f"{path}.receivers", "is required")
        receivers = self.receiver_refs(section["receivers"], f"{path}.receivers", known)
        if not receivers:
            raise ConfigError(f"{path}.receivers", "needs at least one receiver")
        return Route(
            match=AlertMatch(
                equals=self.match(section.get("match", {}), f"{path}.match"),
                min_severity=self.severity(section, "min_severity", path),
            ),
            receivers=receivers,
            params=self.params(section, path, base),
            continue_=self.boolean(section, "continue", path, False),
            name=self.string(section, "name", path) or "",
        )

    def inhibit(self, raw: Any, path: str) -> InhibitRule:
        section = self.table(raw, path)
        self.keys(section, _INHIBIT_KEYS, path)
        for key in ("source_match", "target_match"):
            if key not in section:
                raise ConfigError(f"{path}.{key}", "is required")
        higher = self.string(section, "higher", path)
        if higher is not None and not _LABEL_RE.match(higher):
            raise ConfigError(f"{path}.higher", "must be 'severity' or a label name")
        return InhibitRule(
            source=AlertMatch(self.match(section["source_match"], f"{path}.source_match")),
            target=AlertMatch(self.match(section["target_match"], f"{path}.target_match")),
            equal=self.strings(section.get("equal", []), f"{path}.equal", pattern=_LABEL_RE),
            higher=higher,
            name=self.string(section, "name", path) or "",
        )

    def retry(self, raw: Any, path: str) -> RetryPolicy:
        section = self.table(raw, path)
        self.keys(section, _RETRY_KEYS, path)
        d = RetryPolicy()
        attempts = section.get("max_attempts", d.max_attempts)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigError(f"{path}.max_attempts", "must be an integer >= 1")
        policy = RetryPolicy(
            max_attempts=attempts,
            initial_backoff_s=self.number(section, "initial_backoff_s", path, d.initial_backoff_s),
            backoff_factor=self.number(section, "backoff_factor", path, d.backoff_factor),
            max_backoff_s=self.number(section, "max_backoff_s", path, d.max_backoff_s),
            dead_letter_retry_s=self.number(
                section, "dead_letter_retry_s", path, d.dead_letter_retry_s
            ),
        )
        if policy.backoff_factor < 1:
            raise ConfigError(f"{path}.backoff_factor", "must be >= 1")
        if policy.dead_letter_retry_s <= 0:
            raise ConfigError(f"{path}.dead_letter_retry_s", "must be positive")
        return policy

    # -- the whole section

    def settings(self, raw: Mapping[str, Any] | None, path: str) -> AlertingSettings:
        if raw is None:
            return AlertingSettings.default()
        section = self.table(raw, path)
        self.keys(section, _TOP_KEYS, path)
        base = AlertingSettings.default().defaults
        defaults = self.params(section, path, base)

        receivers_raw = section.get("receivers", [])
        if not isinstance(receivers_raw, list):
            raise ConfigError(f"{path}.receivers", "must be an array of tables")
        receivers = [
            self.receiver(r, f"{path}.receivers[{i}]") for i, r in enumerate(receivers_raw)
        ]
        if not receivers:
            receivers = [ConsoleReceiver("console")]
        names: list[str] = []
        for i, r in enumerate(receivers):
            if r.name in names:
                raise ConfigError(f"{path}.receivers[{i}].name", f"duplicate name {r.name!r}")
            names.append(r.name)
        known = tuple(names)

        def array(key: str) -> list[Any]:
            value = section.get(key, [])
            if not isinstance(value, list):
                raise ConfigError(f"{path}.{key}", "must be an array of tables")
            return value

        routes = tuple(
            self.route(r, f"{path}.routes[{i}]", known, defaults, escalation=False)
            for i, r in enumerate(array("routes"))
        )
        escalations = tuple(
            self.route(r, f"{path}.escalations[{i}]", known, defaults, escalation=True)
            for i, r in enumerate(array("escalations"))
        )
        rules = [self.inhibit(r, f"{path}.inhibit[{i}]") for i, r in enumerate(array("inhibit"))]
        if self.boolean(section, "default_inhibit", path, True):
            rules.insert(0, DEFAULT_RULE)

        def refs(key: str) -> tuple[str, ...] | None:
            if key not in section:
                return None
            return self.receiver_refs(section[key], f"{path}.{key}", known)

        digest_at, digest_tz = _digest_schedule(section, path)
        active_ttl = self.number(section, "active_ttl_s", path, 86400.0)
        if active_ttl <= 0:
            raise ConfigError(f"{path}.active_ttl_s", "must be positive")
        return AlertingSettings(
            receivers=tuple(receivers),
            routes=routes,
            escalations=escalations,
            inhibit_rules=tuple(rules),
            defaults=defaults,
            default_receivers=refs("default_receivers") or known,
            failure_receivers=refs("failure_receivers"),
            digest_receivers=refs("digest_receivers") or known,
            retry=self.retry(section.get("retry", {}), f"{path}.retry"),
            active_ttl_s=active_ttl,
            digest_at=digest_at,
            digest_timezone=digest_tz,
        )


def _digest_schedule(section: Mapping[str, Any], path: str) -> tuple[time | None, str]:
    """``digest_at = "08:00"`` (local time in ``digest_timezone``) or ``"off"``."""
    raw = section.get("digest_at", "08:00")
    at: time | None = None
    if raw != "off":
        try:
            if not isinstance(raw, str):
                raise ValueError
            hours, minutes = (int(x) for x in raw.split(":"))
            at = time(hours, minutes)
        except ValueError:
            raise ConfigError(f"{path}.digest_at", 'must be "HH:MM" or "off"') from None
    zone = section.get("digest_timezone", "UTC")
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}.digest_timezone", f"unknown time zone {zone!r}") from None
    return at, str(zone)
