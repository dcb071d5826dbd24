"""``[console]``: the read-only web console the worker serves on its SQL endpoint's port.

    [console]
    enabled = true                        # serve it at http://<worker.http_host>:<http_port>/
    token = "env:SPENDWATCH_CONSOLE_TOKEN"   # bearer token; required unless bound to loopback
    refresh_s = 1.0                       # how often the figures are recomputed while watched

What it breaks spend down by (the tag, the unit tags, model tiers) comes from ``[report]``, so
the console and the reports show the same figures.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from schemas.errors import ConfigError
from schemas.settings import Secret, resolve_secret
from streams.report.settings import config_error


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConsoleSettings(BaseModel):
    """The validated ``[console]`` section; ``token`` is resolved (``env:VAR``) and hidden."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    enabled: StrictBool = True
    token: Secret | None = None
    refresh_s: float = Field(default=1.0, ge=0.2, le=60.0)

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any] | None, http_host: str, path: str = "console"
    ) -> ConsoleSettings:
        """Validate ``[console]``. A console bound beyond loopback (``worker.http_host``)
        needs a token: ConfigError naming ``console.token`` otherwise."""
        raw = dict(section or {})
        token = None
        if "token" in raw:
            try:
                token = resolve_secret(raw.pop("token"))
            except ValueError as exc:
                raise ConfigError(f"{path}.token", str(exc)) from None
            if token.missing:
                raise ConfigError(
                    f"{path}.token", f"environment variable {token.missing} is not set"
                )
        try:
            settings = cls.model_validate({**raw, "token": token})
        except ValidationError as exc:
            raise config_error(exc, path) from None
        if settings.enabled and settings.token is None and not is_loopback(http_host):
            raise ConfigError(
                f"{path}.token",
                f"required when the worker listens beyond loopback (worker.http_host = "
                f'{http_host!r}): set a bearer token, e.g. token = "env:SPENDWATCH_CONSOLE_TOKEN"',
            )
        return settings
