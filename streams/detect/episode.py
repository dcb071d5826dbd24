"""The alert lifecycle of one detector: confirm, fire once, resolve with hysteresis.

``idle -> pending`` on an anomalous minute; ``pending -> firing`` after ``confirm``
consecutive anomalous minutes (the alert fires once); a normal minute while pending drops back
to idle; ``firing -> idle`` after ``resolve`` consecutive normal minutes (the alert resolves).
A minute without evidence (``None``: e.g. no requests, so no error rate) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Transition = Literal["fire", "resolve"]


@dataclass(frozen=True, slots=True)
class EpisodeEvent:
    """A transition: ``start`` is the first anomalous minute (the episode's identity)."""

    kind: Transition
    start: int
    minute: int


@dataclass(slots=True)
class Episode:
    """Mutable lifecycle state of one detector on one series."""

    confirm: int
    resolve: int
    start: int | None = None
    run: int = 0
    calm: int = 0
    firing: bool = False

    def step(self, minute: int, anomalous: bool | None, span: int = 1) -> EpisodeEvent | None:
        """Advance by one closed minute; return the transition it causes, if any.

        ``span`` is how many minutes ending at ``minute`` the verdict vouches for: a rule
        judging the last two minutes together (``span=2``) makes both of them anomalous, so
        the episode may start at ``minute - span + 1`` and confirm at once.
        """
        if anomalous is None:
            return None
        if anomalous:
            self.calm = 0
            if self.firing:
                return None
            if self.start is None:
                self.start, self.run = minute - span + 1, 0
            self.run = max(self.run, span - 1) + 1
            if self.run >= self.confirm:
                self.firing = True
                return EpisodeEvent("fire", self.start, minute)
            return None
        if self.firing:
            self.calm += 1
            if self.calm >= self.resolve:
                start = self.start
                assert start is not None
                self.reset()
                return EpisodeEvent("resolve", start, minute)
            return None
        self.start, self.run = None, 0
        return None

    def reset(self) -> None:
        self.start, self.run, self.calm, self.firing = None, 0, 0, False

    @property
    def pending(self) -> bool:
        return self.start is not None and not self.firing
