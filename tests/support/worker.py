"""Run the real worker (``spendwatch worker``) in a subprocess for integration tests.

``running_worker(config_text)`` writes the config, starts the worker on it, waits for its SQL
endpoint and yields a :class:`WorkerProcess`; on exit the worker is stopped by its PID
(SIGTERM, then SIGKILL). ``{http_port}`` in the config text is replaced by a free port.
``SW_TEST_LOGLEVEL=INFO`` in the environment shows the worker's log (default WARNING).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.broker import free_port, stop_process


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    endpoint: str
    config: Path

    def query(self, sql: str) -> list[list[Any]]:
        """Rows of a read-only query through the worker's SQL endpoint."""
        request = urllib.request.Request(f"{self.endpoint}/sql", data=sql.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            rows: list[list[Any]] = orjson.loads(response.read())["rows"]
            return rows

    def health(self) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, body)`` of ``GET /health``."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/health", timeout=10) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    def scalar(self, sql: str) -> Any:
        [[value]] = self.query(sql)
        return value


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every half second until it returns True; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last is True:
                return
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


@contextlib.contextmanager
def running_worker(
    config_text: str,
    directory: Path,
    *,
    ready_timeout_s: float = 90.0,
    env: dict[str, str] | None = None,
    stderr: Path | None = None,
) -> Iterator[WorkerProcess]:
    """Start ``spendwatch worker`` on ``config_text`` (written into ``directory``), with
    ``env`` added to a clean environment; its stderr goes to the file ``stderr`` if given."""
    http_port = free_port()
    config = directory / "spendwatch.toml"
    config.write_text(config_text.replace("{http_port}", str(http_port)))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPENDWATCH_")}
    err = stderr.open("ab") if stderr is not None else None
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "worker",
            "--config",
            str(config),
            "--loglevel",
            os.environ.get("SW_TEST_LOGLEVEL", "WARNING"),
        ],
        env={**clean, **(env or {})},
        stderr=err,
        start_new_session=True,
    )
    worker = WorkerProcess(process, f"http://127.0.0.1:{http_port}", config)
    try:
        wait_for(
            lambda: process.poll() is None and worker.query("SELECT 1") == [[1]],
            ready_timeout_s,
            "the worker's SQL endpoint",
        )
        yield worker
    finally:
        stop_process(process, grace_s=30.0)
        if err is not None:
            err.close()
