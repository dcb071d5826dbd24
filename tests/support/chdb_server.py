"""A shared loopback ClickHouse for several worker processes: ``tests.support.chdb_http`` in
a subprocess of its own over one chDB path (see that module for why)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streams.broker import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
CHDB_HTTP = (sys.executable, "-m", "tests.support.chdb_http")


class ChdbHttp:
    """``python -m tests.support.chdb_http`` on a free port over ``path``."""

    def __init__(self, path: Path, log: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [*CHDB_HTTP, "--path", str(path), "--port", str(self.port)],
            cwd=ROOT,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.dsn = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.dsn}/ping", timeout=2),
            ):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"chdb_http exited with {self.process.returncode}")
            time.sleep(0.2)
        raise TimeoutError("chdb_http did not answer")

    def stop(self) -> None:
        stop_process(self.process, grace_s=10.0)

    def __enter__(self) -> ChdbHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
