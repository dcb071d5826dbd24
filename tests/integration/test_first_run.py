"""A new user's first run, through the real commands (issue 15): ``spendwatch init`` ->
``budgets check`` -> ``config check`` -> ``worker`` (no broker: one clear line; a broker:
ready, the optional Slack receiver disabled and listed in /health) -> ``up --port`` printing
the SDK line an app then uses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from importlib.resources import files
from pathlib import Path

import orjson
import pytest

from streams.broker import TansuBroker, free_port, stop_process
from tests.support.worker import wait_for

pytestmark = pytest.mark.integration

SPENDWATCH = str(Path(sys.executable).parent / "spendwatch")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SPENDWATCH_") and k != "SLACK_WEBHOOK_URL"
    }
    return {**env, **extra}


def run(
    *argv: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SPENDWATCH, *argv],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_check_and_worker(tmp_path: Path, broker: TansuBroker) -> None:
    done = run("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "spendwatch.toml").read_text()
    assert written == (files("streams") / "spendwatch.example.toml").read_text()
    assert run("init", cwd=tmp_path).returncode == 1  # never overwrites silently

    check = run("budgets", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("spendwatch.toml: 3 budgets OK\n")
    config = run("config", "check", cwd=tmp_path)
    assert config.returncode == 0, config.stderr
    assert "  kafka.bootstrap_servers  127.0.0.1:9092  (file)\n" in config.stdout
    assert "receiver 'oncall-slack' (slack) is disabled: SLACK_WEBHOOK_URL is not set" in (
        config.stdout
    )

    # No broker: one line that names the address and its origin; exit 1, no traceback.
    nowhere = f"127.0.0.1:{free_port()}"
    alone = run(
        "worker",
        "--kafka-wait-s",
        "1",
        cwd=tmp_path,
        env=clean_env(SPENDWATCH_KAFKA_BOOTSTRAP=nowhere),
    )
    assert alone.returncode == 1
    assert "Traceback" not in alone.stderr
    assert alone.stderr.splitlines() == [
        "spendwatch: warning: receiver 'oncall-slack' (slack) is disabled: SLACK_WEBHOOK_URL "
        "is not set",
        f"spendwatch: no Kafka broker answers at {nowhere} (from $SPENDWATCH_KAFKA_BOOTSTRAP) "
        "within 1 s: check that the broker runs, that this host can reach that address, and "
        "that it is the broker's advertised listener for this network",
    ]

    # Positive control: the same file, a broker there; the worker serves /health.
    port = free_port()
    (tmp_path / "spendwatch.toml").write_text(
        written.replace("http_port = 8787", f"http_port = {port}")
    )
    worker = subprocess.Popen(
        [SPENDWATCH, "worker"],
        cwd=tmp_path,
        env=clean_env(SPENDWATCH_KAFKA_BOOTSTRAP=broker.bootstrap_servers),
        start_new_session=True,
    )
    health: dict[str, object] = {}

    def healthy() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            health.update(orjson.loads(response.read()))
        return worker.poll() is None and health.get("status") == "ok"

    try:
        wait_for(healthy, 90, "the worker's /health")
    finally:
        stop_process(worker, grace_s=30.0)
    assert health["receivers_disabled"] == [
        {"name": "oncall-slack", "type": "slack", "unset": "SLACK_WEBHOOK_URL"}
    ]
    assert (tmp_path / ".spendwatch" / "chdb").is_dir()  # the file's chDB path, under cwd


APP = """
import sys, spendwatch
spendwatch.record("job", provider="polygon", unit="request", quantity=1)
spendwatch.record("job", provider="polygon", unit="request", quantity=1)
spendwatch.record("job", provider="polygon", unit="request", quantity=1)
sys.exit(0 if spendwatch.flush(20) else 1)
"""


def test_up_on_a_port_prints_what_an_app_needs(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    http_port, broker_port = free_port(), free_port()
    path = tmp_path / "spendwatch.toml"
    path.write_text(path.read_text().replace("http_port = 8787", f"http_port = {http_port}"))
    up = subprocess.Popen(
        [SPENDWATCH, "up", "--port", str(broker_port), "--duration", "120"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert up.stdout is not None
        lines: list[str] = []
        while not any("   or: export" in line for line in lines):
            line = up.stdout.readline()
            assert line, f"up ended early: {lines}"
            lines.append(line)
        bootstrap = f"127.0.0.1:{broker_port}"
        assert (
            f'spendwatch: apps: spendwatch.configure(bootstrap_servers="{bootstrap}", '
            'service="my-app")\n' in lines
        )
        export = next(line for line in lines if "export" in line)
        variables = dict(pair.split("=", 1) for pair in re.findall(r"SPENDWATCH_\w+=\S+", export))
        assert variables == {
            "SPENDWATCH_BOOTSTRAP_SERVERS": bootstrap,
            "SPENDWATCH_SERVICE": "my-app",
        }
        # An app configured only by those variables reaches the pipeline.
        app = subprocess.run([sys.executable, "-c", APP], env=clean_env(**variables), timeout=60)
        assert app.returncode == 0

        def stored() -> bool:
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/sql",
                data=b"SELECT count() FROM usage_events WHERE service = 'my-app'",
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                return orjson.loads(response.read())["rows"] == [[3]]

        wait_for(stored, 60, "three events from the app")
        # The port is taken now: a second `up` on it says so instead of starting.
        other = tmp_path / "other"
        other.mkdir()
        (other / "spendwatch.toml").write_text(
            path.read_text().replace(f"http_port = {http_port}", f"http_port = {free_port()}")
        )
        again = run("up", "--port", str(broker_port), cwd=other)
        assert again.returncode == 2
        assert f"--port: 127.0.0.1:{broker_port} is in use" in again.stderr
    finally:
        stop_process(up, grace_s=40.0)  # type: ignore[arg-type]
