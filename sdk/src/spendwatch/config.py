"""SDK settings: explicit argument, then environment variable, then default.

Environment variables (each declared here once, listed in the README):

``SPENDWATCH_BOOTSTRAP_SERVERS``
    Kafka bootstrap servers, ``host:port[,host:port...]``. Default ``localhost:9092``.
``SPENDWATCH_SERVICE``
    The service name every event carries (and the Kafka message key). Required.
``SPENDWATCH_ENVIRONMENT``
    Optional deployment environment (``prod``, ``staging``...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from . import fields
from .errors import ConfigurationError, InvalidEventError

ENV_BOOTSTRAP_SERVERS: Final = "SPENDWATCH_BOOTSTRAP_SERVERS"
ENV_SERVICE: Final = "SPENDWATCH_SERVICE"
ENV_ENVIRONMENT: Final = "SPENDWATCH_ENVIRONMENT"

DEFAULT_BOOTSTRAP_SERVERS: Final = "localhost:9092"
DEFAULT_TOPIC: Final = "spendwatch.usage.v1"


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated SDK settings; build with :func:`resolve`."""

    bootstrap_servers: str
    service: str
    environment: str | None = None
    tags: Mapping[str, str] | None = None
    topic: str = DEFAULT_TOPIC
    queue_size: int = 10_000
    acks: int | str = 1
    linger_ms: int = 5
    compression_type: str | None = None
    request_timeout_ms: int = 30_000
    retry_backoff_max_ms: int = 2_000
    batch_events: int = 1_000
    exit_timeout_s: float = 5.0
    producer_options: Mapping[str, Any] = field(default_factory=dict)


def _bootstrap(value: object, field: str = "bootstrap_servers") -> str:
    """``host:port[,host:port]`` (a string or a list); ``field`` names where it came from."""
    items: Sequence[object]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, Sequence):
        items = value
    else:
        raise ConfigurationError(
            field, f"must be 'host:port[,host:port]', got {type(value).__name__}"
        )
    servers: list[str] = []
    for raw in items:
        item = str(raw).strip()
        if "://" in item:
            # Kafka speaks its own protocol: a URL here is a mistake, not a form to accept.
            address = item.split("://", 1)[1].split("/", 1)[0]
            raise ConfigurationError(
                field, f"{item!r} is a URL; Kafka takes host:port, e.g. {address!r}"
            )
        host, sep, port = item.rpartition(":")
        if not item or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(field, f"{item!r} is not host:port (e.g. 'localhost:9092')")
        servers.append(item)
    if not servers:
        raise ConfigurationError(field, "is empty")
    return ",".join(servers)


def _positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(name, f"must be an int >= {minimum}, got {value!r}")
    return value


def resolve(
    *,
    bootstrap_servers: str | Sequence[str] | None = None,
    service: str | None = None,
    environment: str | None = None,
    tags: Mapping[str, str] | None = None,
    topic: str = DEFAULT_TOPIC,
    queue_size: int = 10_000,
    acks: int | str = 1,
    linger_ms: int = 5,
    compression_type: str | None = None,
    request_timeout_ms: int = 30_000,
    retry_backoff_max_ms: int = 2_000,
    batch_events: int = 1_000,
    exit_timeout_s: float = 5.0,
    producer_options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge arguments, environment (``environ``, default ``os.environ``) and defaults.

    Raises ``ConfigurationError`` naming the field for anything missing or malformed; does no
    I/O (an unreachable broker is not a configuration error, events wait for it).
    """
    env = os.environ if environ is None else environ
    # An error in a value read from the environment names the variable, not the argument.
    servers_field = "bootstrap_servers" if bootstrap_servers is not None else ENV_BOOTSTRAP_SERVERS
    raw_servers = (
        bootstrap_servers
        if bootstrap_servers is not None
        else env.get(ENV_BOOTSTRAP_SERVERS) or DEFAULT_BOOTSTRAP_SERVERS
    )
    servers = _bootstrap(raw_servers, servers_field)
    raw_service = service if service is not None else env.get(ENV_SERVICE)
    if raw_service is None or raw_service == "":
        raise ConfigurationError(
            "service", f"no service name: pass configure(service=...) or set {ENV_SERVICE}"
        )
    raw_environment = environment if environment is not None else env.get(ENV_ENVIRONMENT) or None
    try:
        service_name = fields.service_name(
            "service" if service is not None else ENV_SERVICE, raw_service
        )
        env_name = (
            None
            if raw_environment is None
            else fields.text(
                "environment" if environment is not None else ENV_ENVIRONMENT,
                raw_environment,
                max_len=64,
            )
        )
        tag_map = fields.tags("tags", tags) if tags else None
    except InvalidEventError as exc:
        raise ConfigurationError(exc.field, exc.message) from None
    if not isinstance(topic, str) or not topic:
        raise ConfigurationError("topic", "must be a non-empty string")
    if acks not in (0, 1, -1, "all"):
        raise ConfigurationError("acks", f"must be 0, 1, -1 or 'all', got {acks!r}")
    if isinstance(exit_timeout_s, bool) or not isinstance(exit_timeout_s, int | float):
        raise ConfigurationError("exit_timeout_s", "must be a number of seconds")
    if exit_timeout_s < 0:
        raise ConfigurationError("exit_timeout_s", "must not be negative")
    return Settings(
        bootstrap_servers=servers,
        service=service_name,
        environment=env_name,
        tags=tag_map,
        topic=topic,
        queue_size=_positive_int("queue_size", queue_size),
        acks=acks,
        linger_ms=_positive_int("linger_ms", linger_ms, minimum=0),
        compression_type=compression_type,
        request_timeout_ms=_positive_int("request_timeout_ms", request_timeout_ms),
        retry_backoff_max_ms=_positive_int("retry_backoff_max_ms", retry_backoff_max_ms),
        batch_events=_positive_int("batch_events", batch_events),
        exit_timeout_s=float(exit_timeout_s),
        producer_options=dict(producer_options or {}),
    )
