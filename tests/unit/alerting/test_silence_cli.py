"""``spendwatch silence`` CLI, the silences file, and a running dispatcher picking it up."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from alerting.cli import register
from alerting.config import AlertingSettings
from alerting.delivery import AlertDispatcher
from alerting.deliverylog import MemoryDeliveryLog
from alerting.notifiers.recording import RecordingNotifier
from alerting.silence_store import FileSilenceStore
from tests.unit.alerting.factories import spike_alert


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="spendwatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_add_list_expire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sd = str(tmp_path)
    assert (
        run(
            "silence",
            "add",
            "--state-dir",
            sd,
            "--match",
            "service=checkout",
            "-m",
            "severity!=emergency",
            "--for",
            "2h",
            "--comment",
            "deploy",
            "--author",
            "ana",
        )
        == 0
    )
    sid = capsys.readouterr().out.strip()
    data = orjson.loads((tmp_path / "silences.json").read_bytes())
    [s] = data["silences"]
    assert s["id"] == sid and s["matchers"] == ["service=checkout", "severity!=emergency"]
    assert s["comment"] == "deploy" and s["created_by"] == "ana"
    start, end = datetime.fromisoformat(s["starts_at"]), datetime.fromisoformat(s["ends_at"])
    assert end - start == timedelta(hours=2)

    assert run("silence", "list", "--state-dir", sd) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{sid[:8]}  active ")
    assert "service=checkout,severity!=emergency  by ana: deploy" in out

    assert run("silence", "expire", "--state-dir", sd, sid[:8]) == 0
    assert capsys.readouterr().out == f"expired {sid}\n"
    assert run("silence", "list", "--state-dir", sd) == 0
    assert capsys.readouterr().out == "no active or pending silences\n"
    assert run("silence", "list", "--state-dir", sd, "--all", "--json") == 0
    assert orjson.loads(capsys.readouterr().out)[0]["state"] == "expired"


def test_state_dir_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPENDWATCH_STATE_DIR", str(tmp_path / "env-dir"))
    assert run("silence", "add", "-m", "service=x", "--for", "1h", "-c", "why") == 0
    assert (tmp_path / "env-dir" / "silences.json").exists()


def test_bad_input_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sd = str(tmp_path)
    assert run("silence", "add", "--state-dir", sd, "-m", "service", "--for", "1h", "-c", "x") == 2
    assert run("silence", "add", "--state-dir", sd, "-m", "a=b", "--for", "soon", "-c", "x") == 2
    assert run("silence", "expire", "--state-dir", sd, "nope") == 1
    assert "invalid matcher" in capsys.readouterr().err


async def test_running_dispatcher_rereads_silences_file(tmp_path: Path) -> None:
    cfg = AlertingSettings.from_config(
        {"group_wait_s": 0, "group_interval_s": 1, "receivers": [{"name": "r", "type": "console"}]}
    )
    rec = RecordingNotifier("r")
    store = FileSilenceStore(tmp_path / "silences.json")
    d = AlertDispatcher(cfg, {"r": rec}, MemoryDeliveryLog(), store)
    now = datetime.now(UTC)
    await d.tick(now)  # running, no silences file yet
    assert (
        run(
            "silence",
            "add",
            "--state-dir",
            str(tmp_path),
            "-m",
            "service=checkout",
            "--for",
            "1h",
            "-c",
            "maintenance",
        )
        == 0
    )
    await d.submit(spike_alert(service="checkout", window="w1"), now)
    await d.submit(spike_alert(service="search", window="w1"), now)
    await d.tick(now + timedelta(seconds=1))
    assert [a.labels["service"] for n in rec.sent for a in n.alerts] == ["search"]
    # a hand-broken file keeps the last good silences (it must not unmute everything)
    (tmp_path / "silences.json").write_text("{not json")
    await d.tick(now + timedelta(seconds=3))
    assert store.error is not None
    assert len(rec.sent) == 1
    await d.close()
