"""Errors shared by every component's settings loader."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is missing or wrong. Raised at start-up, never later.

    ``field`` is the dotted path of the offending setting (``budgets[2].limit_usd``) so the
    message can name it; ``line`` is the line in the TOML file when it is known; ``loc`` is the
    same path as a tuple (``("budgets", 2, "limit_usd")``) when a settings model raised it.
    """

    def __init__(
        self,
        field: str,
        message: str,
        *,
        line: int | None = None,
        loc: tuple[str | int, ...] | None = None,
    ) -> None:
        self.field = field
        self.loc = loc
        self.line = line
        self.message = message
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{field}: {message}")
