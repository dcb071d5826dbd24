"""File-backed delivery log: append-only JSONL, one fsync per entry.

Alerts are rare (a few per minute at worst), so an fsync per entry (a few ms) on the event
loop is an acceptable price for "once per receiver, alert and status" across crashes.
A crash can tear only the last line; ``read`` skips it (and the next append starts on a
fresh line). ``rewrite`` compacts through a temporary file and an atomic rename.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from alerting.deliverylog.base import LogEntry

log = logging.getLogger(__name__)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileDeliveryLog:
    """JSONL file at ``path`` (parent directories are created)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fh = open(self.path, "ab")  # noqa: SIM115 - held open for appends until close()
        if created:
            _fsync_dir(self.path.parent)
        self._needs_newline = self._ends_torn()
        self.skipped_lines = 0

    def _ends_torn(self) -> bool:
        size = self.path.stat().st_size
        if size == 0:
            return False
        with open(self.path, "rb") as fh:
            fh.seek(size - 1)
            return fh.read(1) != b"\n"

    def read(self) -> list[LogEntry]:
        entries: list[LogEntry] = []
        self.skipped_lines = 0
        with open(self.path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    self.skipped_lines += 1
                    log.warning("delivery log %s: skipped unreadable line %d", self.path, lineno)
                    continue
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def append(self, entry: LogEntry) -> None:
        data = orjson.dumps(entry) + b"\n"
        if self._needs_newline:
            data = b"\n" + data
            self._needs_newline = False
        self._fh.write(data)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def rewrite(self, entries: list[LogEntry]) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "wb") as fh:
            for entry in entries:
                fh.write(orjson.dumps(entry) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._fh.close()
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self._fh = open(self.path, "ab")  # noqa: SIM115
        self._needs_newline = False

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
