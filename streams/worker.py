"""Run one worker in this process until SIGINT/SIGTERM (``spendwatch worker``).

Start-up, before anything consumes or produces: create or check every topic the worker uses
(``streams.admin``), then read the usage epoch (``streams.epoch``). A broker that cannot be
reached, or a topic layout the worker cannot use, stops the start-up with one clear line and
a non-zero exit. A component that crashes later stops the worker with exit code 1 and the
reason (``streams.supervise``).
"""

from __future__ import annotations

import asyncio
import logging
import sys

import faust
from aiokafka.errors import KafkaConnectionError, KafkaError

from schemas import redact
from streams import faults, memtrace, topics
from streams.admin import TopicLayoutError, ensure_topics
from streams.app import LEADER_TOPIC, Pipeline
from streams.config import Settings
from streams.epoch import usage_epoch
from streams.supervise import Supervisor

log = logging.getLogger("spendwatch.worker")

START_TIMEOUT_S = 60.0


class StartupError(RuntimeError):
    """The worker cannot start; the message says why and what to check."""


async def prepare(settings: Settings) -> tuple[dict[str, int], str]:
    """Create/check the topics and read the usage epoch: ``(partitions per topic, epoch)``."""
    k = settings.kafka
    specs = [*topics.SPECS, topics.TopicSpec(LEADER_TOPIC, partitions=1)]
    if k.export_priced:
        specs += list(topics.EXPORT_SPECS)
    try:
        counts = await asyncio.wait_for(
            ensure_topics(
                k.bootstrap_servers, specs, k.partitions, replication_factor=k.replication_factor
            ),
            START_TIMEOUT_S,
        )
        epoch = await asyncio.wait_for(usage_epoch(k.bootstrap_servers), START_TIMEOUT_S)
    except TopicLayoutError as exc:
        raise StartupError(str(exc)) from None
    except (KafkaConnectionError, TimeoutError, OSError) as exc:
        raise StartupError(
            f"cannot reach Kafka at {k.bootstrap_servers} ({type(exc).__name__}: {exc}); "
            "check [kafka] bootstrap_servers / SPENDWATCH_KAFKA_BOOTSTRAP and that the "
            "broker is up"
        ) from None
    except KafkaError as exc:
        raise StartupError(f"Kafka at {k.bootstrap_servers} refused the set-up: {exc}") from None
    return counts, epoch


def run_worker(settings: Settings, *, loglevel: str = "WARNING") -> int:
    """Start the worker for ``settings`` and block until it is told to stop; the exit code
    (1 when a component crashed, 2 when the start-up failed)."""
    redact.install()  # no secret in any log line, whichever library writes it
    logging.basicConfig(
        level=getattr(logging, loglevel.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        faults.arm()
    except ValueError as exc:
        print(f"spendwatch worker: {exc}", file=sys.stderr)
        return 2
    memtrace.arm(settings.clickhouse)
    try:
        partitions, epoch = asyncio.run(prepare(settings))
    except StartupError as exc:
        print(f"spendwatch worker: {exc}", file=sys.stderr)
        return 2
    supervisor = Supervisor()
    pipeline = Pipeline(settings, epoch=epoch, partitions=partitions, supervisor=supervisor)
    worker = faust.Worker(
        pipeline.app,
        loglevel=loglevel,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.spinner = None  # no terminal spinner: the worker's stdout carries console alerts
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:  # mode exits through SystemExit after a clean stop
        code = int(exc.code or 0)
    if supervisor.crash_reason is not None:
        print(f"spendwatch worker: stopped: {supervisor.crash_reason}", file=sys.stderr)
        return supervisor.exit_code
    return code
