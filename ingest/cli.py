"""``spendwatch ingest``: run the HTTP ingest endpoint (see ``ingest.server``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from streams.config import load_settings

    from .producer import UsageProducer
    from .server import build_app
    from .settings import IngestSettings

    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(args.config)
    ingest = IngestSettings.from_config(settings.raw.get("ingest", {}))
    host = args.host or ingest.host
    port = ingest.port if args.port is None else args.port
    producer = UsageProducer(
        settings.kafka.bootstrap_servers,
        acks=ingest.acks,
        timeout_s=ingest.produce_timeout_s,
        partitions=settings.kafka.partitions,
    )
    app = build_app(ingest, producer)
    log = logging.getLogger("ingest")
    log.warning(
        "spendwatch ingest on http://%s:%d (POST /v1/traces, /v1/events) -> %s",
        host,
        port,
        settings.kafka.bootstrap_servers,
    )
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    return 0


def register(sub: Any) -> None:
    """Add the ``ingest`` command to the ``spendwatch`` parser's subcommands."""
    parser = sub.add_parser(
        "ingest",
        help="HTTP ingest: OTLP GenAI spans and JSON-lines usage events -> Kafka",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $SPENDWATCH_CONFIG or ./spendwatch.toml)",
    )
    parser.add_argument("--host", default=None, help="listen address (default: ingest.host)")
    parser.add_argument("--port", type=int, default=None, help="listen port (default: ingest.port)")
    parser.add_argument("--loglevel", default="WARNING")
    parser.set_defaults(func=_run)
