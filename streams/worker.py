"""Run one stream worker in this process until SIGINT/SIGTERM (``spendwatch worker``)."""

from __future__ import annotations

import logging
import sys

import faust

from streams.app import Pipeline
from streams.config import Settings


def run_worker(settings: Settings, *, loglevel: str = "WARNING") -> int:
    """Start the Faust worker for ``settings`` and block until it is told to stop.

    The worker flushes its sinks and closes ClickHouse on the way out. Returns the exit code.
    """
    logging.basicConfig(
        level=getattr(logging, loglevel.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    pipeline = Pipeline(settings)
    worker = faust.Worker(
        pipeline.app,
        loglevel=loglevel,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.spinner = None  # no terminal spinner: the worker's stdout carries console alerts
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:  # mode exits through SystemExit after a clean stop
        return int(exc.code or 0)
    return 0
