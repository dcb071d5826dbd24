"""In-memory delivery log: survives a dispatcher restart within one process (share the
instance), not a process restart. Entries are kept as JSON bytes, like the file log, so a
test sees exactly what would have been persisted."""

from __future__ import annotations

import orjson

from alerting.deliverylog.base import LogEntry


class MemoryDeliveryLog:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    @property
    def entries(self) -> list[LogEntry]:
        return self.read()

    def read(self) -> list[LogEntry]:
        return [orjson.loads(line) for line in self.lines]

    def append(self, entry: LogEntry) -> None:
        self.lines.append(orjson.dumps(entry))

    def rewrite(self, entries: list[LogEntry]) -> None:
        self.lines = [orjson.dumps(e) for e in entries]

    def close(self) -> None:
        pass
