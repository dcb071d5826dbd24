"""Escaping for Slack ``mrkdwn`` so names and labels from the data cannot inject formatting,
links or mentions.

Slack has no backslash escape. ``&``, ``<``, ``>`` become the HTML entities Slack documents
(which also disarms ``<!channel>``, ``<@U123>`` and ``<url|text>``), and the formatting marks
``* _ ~ ` `` become look-alike characters so ``*bold*`` in a service name stays literal.
"""

from __future__ import annotations

from typing import Final

_TABLE: Final = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "*": "\u2217",  # ASTERISK OPERATOR
        "_": "\u02cd",  # MODIFIER LETTER LOW MACRON
        "~": "\u223c",  # TILDE OPERATOR
        "`": "\u02cb",  # MODIFIER LETTER GRAVE ACCENT
    }
)


_ENTITIES: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape_entities(text: str) -> str:
    """``&``, ``<``, ``>`` as entities: what Slack requires in every text object, including
    ``plain_text`` (headers), where formatting marks are shown literally anyway."""
    return text.translate(_ENTITIES)


def escape_mrkdwn(text: str) -> str:
    """Text safe to place inside a ``mrkdwn`` object (or a message's ``text`` fallback)."""
    return text.translate(_TABLE)


def truncate(text: str, limit: int) -> str:
    """Cut to Slack's field limits (header 150, section text 3000, field 2000 characters)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
