"""Rendered message values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Block = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A rendered Slack message: ``blocks`` for Block Kit, ``text`` as the fallback."""

    text: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class EmailContent:
    """A rendered email: one-line ``subject``, plain ``text`` part and ``html`` part."""

    subject: str
    text: str
    html: str
