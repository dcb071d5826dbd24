"""The delivery log: what was accepted, sent and dead-lettered, durable across restarts.

``DeliveryLog`` is the storage contract (append-only entries); ``FileDeliveryLog`` keeps
them in an fsync'd JSONL file under the state dir, ``MemoryDeliveryLog`` in a list (tests,
or one process's life). ``Ledger`` indexes the entries for the dispatcher. ``SharedLog``
(``shared.py``) is the part every worker of a group reads: ``TopicDeliveryLog`` keeps it in a
compacted topic co-partitioned with the alerts, ``MemorySharedLog`` in lists (tests).
"""

from alerting.deliverylog.base import DeliveryLog, LogEntry
from alerting.deliverylog.file import FileDeliveryLog
from alerting.deliverylog.ledger import Ledger
from alerting.deliverylog.memory import MemoryDeliveryLog
from alerting.deliverylog.shared import MemorySharedLog, SharedLog, partition_for
from alerting.deliverylog.topic import TopicDeliveryLog

__all__ = [
    "DeliveryLog",
    "FileDeliveryLog",
    "Ledger",
    "LogEntry",
    "MemoryDeliveryLog",
    "MemorySharedLog",
    "SharedLog",
    "TopicDeliveryLog",
    "partition_for",
]
