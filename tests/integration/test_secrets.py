"""Secrets never leave the process that holds them: the full pipeline with secrets from the
environment (a Slack webhook URL, a Slack bot token, an SMTP password), first failures on every
channel (so errors are raised, retried, logged and recorded), and a threshold alert delivered
to all three receivers. Then every place text goes is searched for the three secrets:

* the worker's log (DEBUG level), stdout and stderr;
* every row of every spendwatch table in ClickHouse (through the SQL endpoint) and /health;
* every record of every spendwatch topic on the broker;
* the Slack payloads and e-mails as delivered (bodies: the bot token may only travel in the
  ``Authorization`` header, the webhook URL only as the request path);
* the output of ``spendwatch config check``, ``spendwatch sql`` and ``spendwatch budgets
  check`` (each run with the secrets in its environment too), and of a config error naming a
  secret field.
"""

from __future__ import annotations

import asyncio
import os
import secrets as random_secrets
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import topics
from streams.broker import TansuBroker
from tests.support.slack_server import SlackServer, server_error
from tests.support.smtp_server import SmtpReply, SmtpServer
from tests.support.worker import running_worker, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def config(broker: TansuBroker, slack: SlackServer, smtp: SmtpServer, tmp: Path) -> str:
    return f"""
[kafka]
bootstrap_servers = "{broker.bootstrap_servers}"
partitions = 1

[worker]
http_port = {{http_port}}
state_dir = "{tmp / "state"}"
status_interval_s = 0.5

[clickhouse]
dsn = "chdb://{tmp / "chdb"}"

[detect]
enabled = false

[[budgets]]
name = "fleet"
limit_usd = "1"
thresholds = [0.5]

[alerting]
group_wait_s = 0
group_interval_s = 1
group_by = ["alert_id"]
digest_at = "off"

[alerting.retry]
initial_backoff_s = 0.2
max_backoff_s = 0.5

[[alerting.receivers]]
name = "hook"
type = "slack"
webhook_url = "env:SW_TEST_SLACK_WEBHOOK"

[[alerting.receivers]]
name = "bot"
type = "slack"
bot_token = "env:SW_TEST_SLACK_BOT_TOKEN"
channel = "#spend"
base_url = "{slack.api_base_url}"

[[alerting.receivers]]
name = "mail"
type = "email"
to = ["ops@example.com"]
from = "spendwatch@example.com"
smtp_host = "127.0.0.1"
smtp_port = {smtp.port}
username = "spendwatch"
password = "env:SW_TEST_SMTP_PASSWORD"
"""


async def produce(bootstrap: str) -> None:
    now = datetime.now(UTC) - timedelta(seconds=2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(3):
            event = {
                "schema_version": 1,
                "event_id": str(uuid.uuid4()),
                "ts": (now + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "service": "chat",
                "operation": "call",
                "status": "ok",
                "provider": "acme",
                "unit": "call",
                "cost_usd": "0.25",
            }
            await producer.send_and_wait(topics.USAGE, orjson.dumps(event), key=b"chat")
    finally:
        await producer.stop()


async def every_record(bootstrap: str) -> bytes:
    consumer = AIOKafkaConsumer(
        *topics.ALL, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out = []
    try:
        for _ in range(10):
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                out += [(r.key or b"") + b"\n" + (r.value or b"") for r in records]
    finally:
        await consumer.stop()
    return b"\n".join(out)


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return f"{args} -> {done.returncode}\n{done.stdout}\n{done.stderr}"


def test_no_secret_reaches_a_log_row_topic_payload_or_cli_output(
    broker: TansuBroker, slack: SlackServer, tmp_path: Path
) -> None:
    token = random_secrets.token_hex(8)
    webhook_path = f"T0SECRET/B0SECRET/hook-{token}"
    bot_token = f"xoxb-bot-{token}"
    password = f"smtp-pass-{token}"
    found_in = {"webhook": f"hook-{token}", "bot": bot_token, "smtp": password}
    secret_env = {
        "SW_TEST_SLACK_WEBHOOK": slack.webhook_url(webhook_path),
        "SW_TEST_SLACK_BOT_TOKEN": bot_token,
        "SW_TEST_SMTP_PASSWORD": password,
    }
    # Each channel fails first: errors are made, logged, retried and recorded.
    slack.script(server_error(500), endpoint="webhook")
    slack.script(server_error(503), endpoint="chat.postMessage")
    with SmtpServer(auth=("spendwatch", password)) as smtp:
        smtp.script(SmtpReply("451 4.3.0 Try again later"))
        text = config(broker, slack, smtp, tmp_path)
        log = tmp_path / "worker.log"
        env = {**secret_env, "SW_TEST_LOGLEVEL": "DEBUG"}
        os.environ["SW_TEST_LOGLEVEL"] = "DEBUG"
        try:
            with running_worker(text, tmp_path, env=env, stderr=log) as worker:
                asyncio.run(produce(broker.bootstrap_servers))

                def delivered() -> bool | tuple[int, int, int]:
                    hooks = [r for r in slack.delivered if r.endpoint == "webhook"]
                    bots = [r for r in slack.delivered if r.endpoint == "chat.postMessage"]
                    done = (len(hooks), len(bots), len(smtp.messages))
                    return all(done) or done

                wait_for(delivered, 90, "the threshold alert on all three receivers")
                tables = [t for [t] in worker.query("SHOW TABLES")]
                stored = {t: worker.query(f"SELECT * FROM `{t}`") for t in tables}
                health = worker.health()
                endpoint = worker.endpoint
                cli_env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith("SPENDWATCH_")},
                    **secret_env,
                    "PYTHONPATH": str(ROOT),
                    "SPENDWATCH_SQL_ENDPOINT": f"{endpoint}/sql",
                }
                outputs = [
                    cli("config", "check", "--config", str(worker.config), env=cli_env),
                    cli("budgets", "check", "--config", str(worker.config), env=cli_env),
                    cli("sql", "SELECT * FROM alerts", "--format", "json", env=cli_env),
                ]
        finally:
            os.environ.pop("SW_TEST_LOGLEVEL", None)
        mails = [m.raw for m in smtp.messages]
        assert smtp.messages[0].login == "spendwatch"  # the password was used, and worked
    topics_text = asyncio.run(every_record(broker.bootstrap_servers))
    # A config error about a secret field names the field, not the value.
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("{http_port}", "1").replace("smtp_port = ", "smtp_port = -"))
    outputs.append(cli("config", "check", "--config", str(bad), env=cli_env))
    bad.write_text(
        text.replace("{http_port}", "1").replace(
            'webhook_url = "env:SW_TEST_SLACK_WEBHOOK"', f'webhook_url = "ftp://{webhook_path}"'
        )
    )
    outputs.append(cli("config", "check", "--config", str(bad), env=cli_env))

    # The secrets did their job where they belong...
    assert [r.answer for r in slack.requests if r.endpoint == "webhook"][:2] == ["500", "200"]
    assert {r.path for r in slack.requests if r.endpoint == "webhook"} == {
        f"/webhook/{webhook_path}"
    }
    bot_headers = {
        r.headers.get("Authorization") for r in slack.requests if r.endpoint != "webhook"
    }
    assert bot_headers == {f"Bearer {bot_token}"}
    # ... and nowhere else.
    places = {
        "worker log": log.read_bytes(),
        "ClickHouse rows": orjson.dumps(stored),
        "/health": orjson.dumps(health),
        "topics": topics_text,
        "Slack payloads": orjson.dumps([r.body for r in slack.requests]),
        "emails": b"\n".join(mails),
        "CLI output": "\n".join(outputs).encode(),
    }
    assert sum(len(v) for v in places.values()) > 0
    for place, content in places.items():
        for name, secret in found_in.items():
            assert secret.encode() not in content, f"the {name} secret is in the {place}"
    # Not vacuous: the places hold what they should.
    assert b"Try again later" in log.read_bytes() or b"451" in log.read_bytes()
    assert stored.get("alerts")
    assert "invalid" in outputs[-1] or "ftp" in outputs[-1] or "url" in outputs[-1]
