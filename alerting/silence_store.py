"""Where silences live: a JSON file in the state dir (``silences.json``), or memory.

The CLI writes the file (atomically: temporary file + rename, under an exclusive lock);
the running dispatcher calls ``current()`` every tick, which re-reads the file only when
its (mtime, size, inode) changed, so a silence added while the worker runs takes effect on
the next tick. A file that cannot be parsed keeps the last good silences and is reported
in ``error`` (a half-edited file must not unmute everything).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import orjson

from alerting.policy.silences import Silence

log = logging.getLogger(__name__)


class SilenceStore(Protocol):
    def current(self) -> tuple[Silence, ...]:
        """Every known silence (active, pending or expired)."""
        ...


class MemorySilenceStore:
    def __init__(self, silences: tuple[Silence, ...] = ()) -> None:
        self.silences: list[Silence] = list(silences)

    def current(self) -> tuple[Silence, ...]:
        return tuple(self.silences)

    def add(self, silence: Silence) -> None:
        self.silences.append(silence)


class FileSilenceStore:
    """Silences in ``path`` as ``{"version": 1, "silences": [...]}``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._cache: tuple[Silence, ...] = ()
        self.error: str | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _parse(self, raw: bytes) -> tuple[Silence, ...]:
        data = orjson.loads(raw) if raw.strip() else {"silences": []}
        return tuple(Silence.from_dict(s) for s in data.get("silences", []))

    def current(self) -> tuple[Silence, ...]:
        stamp = self._stat()
        if stamp == self._stamp:
            return self._cache
        if stamp is None:
            self._stamp, self._cache, self.error = None, (), None
            return self._cache
        try:
            silences = self._parse(self.path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.error = f"{self.path}: {exc}"
            log.error("cannot read silences, keeping the previous ones: %s", self.error)
            self._stamp = stamp
            return self._cache
        self._stamp, self._cache, self.error = stamp, silences, None
        return silences

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, silences: list[Silence]) -> None:
        data = {"version": 1, "silences": [s.to_dict() for s in silences]}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def _read_strict(self) -> list[Silence]:
        if not self.path.exists():
            return []
        return list(self._parse(self.path.read_bytes()))

    def add(self, silence: Silence) -> None:
        with self._locked():
            silences = self._read_strict()
            silences.append(silence)
            self._write(silences)

    def expire(self, silence_id: str, now: datetime) -> Silence:
        """End a silence at ``now`` (a unique id prefix is accepted). Raises ``KeyError``."""
        with self._locked():
            silences = self._read_strict()
            hits = [i for i, s in enumerate(silences) if s.id.startswith(silence_id)]
            if len(hits) != 1:
                raise KeyError(silence_id)
            old = silences[hits[0]]
            if old.ends_at <= now:
                return old
            # A pending silence becomes an (almost) empty window that has already ended.
            new = Silence(
                id=old.id,
                matchers=old.matchers,
                starts_at=min(old.starts_at, now - timedelta(microseconds=1)),
                ends_at=now,
                comment=old.comment,
                created_by=old.created_by,
                created_at=old.created_at,
            )
            silences[hits[0]] = new
            self._write(silences)
            return new
