"""The ``[ingest]`` section of ``spendwatch.toml``, validated at start-up.

``SPENDWATCH_INGEST_TOKEN``  the bearer token clients must send (overrides ``ingest.token``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final

from schemas import environment
from schemas.errors import ConfigError

ENV_TOKEN: Final = environment.INGEST_TOKEN.name
_KEYS: Final = {
    "host",
    "port",
    "token",
    "max_body_bytes",
    "produce_timeout_s",
    "retry_after_s",
    "acks",
}


def _number(section: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"ingest.{key}", f"must be a number from {low:g} to {high:g}")
    return float(value)


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """Where ``spendwatch ingest`` listens and how it bounds what it accepts.

    ``token``: required (a client sends ``Authorization: Bearer <token>``); never printed.
    ``max_body_bytes``: the largest request body, after gzip decompression (413 above it).
    ``produce_timeout_s``: how long a request waits for the broker's acknowledgement before
    it is answered 503 with ``Retry-After: retry_after_s``. ``acks``: the producer's acks.
    """

    token: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 4318  # the OTLP/HTTP port, so exporters' defaults need only the host
    max_body_bytes: int = 4 * 1024 * 1024
    produce_timeout_s: float = 10.0
    retry_after_s: int = 5
    acks: int | str = "all"

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> IngestSettings:
        if not isinstance(section, dict):
            raise ConfigError("ingest", "must be a table")
        for key in section:
            if key not in _KEYS:
                raise ConfigError(
                    f"ingest.{key}", f"unknown setting (expected one of {sorted(_KEYS)})"
                )
        token = os.environ.get(ENV_TOKEN) or section.get("token")
        if not isinstance(token, str) or len(token) < 16:
            raise ConfigError(
                "ingest.token",
                f"a bearer token of at least 16 characters is required (or set {ENV_TOKEN})",
            )
        host = section.get("host", "127.0.0.1")
        if not isinstance(host, str) or not host:
            raise ConfigError("ingest.host", "must be a host name or address")
        port = section.get("port", 4318)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError("ingest.port", "must be an integer from 0 to 65535")
        acks = section.get("acks", "all")
        if acks not in (1, "all", -1):
            raise ConfigError("ingest.acks", 'must be 1 or "all" (acknowledged writes only)')
        return cls(
            token=token,
            host=host,
            port=port,
            max_body_bytes=int(_number(section, "max_body_bytes", 4 << 20, 1024, 64 << 20)),
            produce_timeout_s=_number(section, "produce_timeout_s", 10.0, 0.1, 120.0),
            retry_after_s=int(_number(section, "retry_after_s", 5, 1, 3600)),
            acks=acks,
        )
