"""The delivery log: what was accepted, sent and dead-lettered, durable across restarts.

``DeliveryLog`` is the storage contract (append-only entries); ``FileDeliveryLog`` keeps
them in an fsync'd JSONL file under the state dir, ``MemoryDeliveryLog`` in a list (tests,
or one process's life). ``Ledger`` indexes the entries for the dispatcher.
"""

from alerting.deliverylog.base import DeliveryLog, LogEntry
from alerting.deliverylog.file import FileDeliveryLog
from alerting.deliverylog.ledger import Ledger
from alerting.deliverylog.memory import MemoryDeliveryLog

__all__ = ["DeliveryLog", "FileDeliveryLog", "Ledger", "LogEntry", "MemoryDeliveryLog"]
