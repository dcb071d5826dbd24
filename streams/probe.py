"""Before the worker starts: is a Kafka broker answering at the configured address?

Without this, a worker pointed at nothing dies deep in Faust with a long traceback. The
probe asks the bootstrap servers for cluster metadata (one aiokafka client, no consumer
group) until ``wait_s`` has passed, and returns one line that names the address, where the
address came from and what to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time


async def _answers(bootstrap: str, timeout_s: float) -> bool:
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaError

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(int(timeout_s * 1000), 1000)
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def kafka_problem(bootstrap: str, *, origin: str = "", wait_s: float = 10.0) -> str | None:
    """None when a broker at ``bootstrap`` answers within ``wait_s``; else one line for the
    user. ``origin`` says where the address came from (``$SPENDWATCH_KAFKA_BOOTSTRAP``,
    ``--bootstrap-servers``, ``file``, ``default``)."""
    deadline = time.monotonic() + wait_s
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # one line from us instead of aiokafka's per attempt
    try:
        while True:
            left = deadline - time.monotonic()
            if asyncio.run(_answers(bootstrap, max(min(left, 5.0), 0.5))):
                return None
            if time.monotonic() + 1.0 > deadline:
                break
            time.sleep(1.0)
    finally:
        quiet.setLevel(level)
    where = {
        "file": "[kafka] bootstrap_servers in the config file",
        "default": "the default (no [kafka] bootstrap_servers in the config file)",
    }.get(origin, origin)
    return (
        f"no Kafka broker answers at {bootstrap} (from {where or 'the settings'}) within "
        f"{wait_s:g} s: check that the broker runs, that this host can reach that address, "
        "and that it is the broker's advertised listener for this network"
    )
