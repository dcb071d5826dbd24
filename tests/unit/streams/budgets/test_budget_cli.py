"""``spendwatch budgets check`` / ``override`` argument handling (the broker part is in
tests/integration/test_budget_guard.py)."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from streams.budgets import OverrideCommand, parse_duration
from streams.budgets.cli import cmd_check, register

TOML = """\
[kafka]
bootstrap_servers = "127.0.0.1:1"

[[budgets]]
name = "growth-llm"
period = "month"
timezone = "America/New_York"
limit_usd = "250.75"
per_request_limit_usd = "2.5"
requests_per_minute = 600
labels = { team = "growth" }
degrade_to = { "gpt-4o" = "gpt-4o-mini" }
on_exhausted = "degrade"
match = { service = "chat-*", model = "gpt-4o*" }
"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spendwatch")
    register(parser.add_subparsers())
    return parser.parse_args(list(argv))


def test_check_prints_budgets_with_their_current_period(tmp_path: Path) -> None:
    path = tmp_path / "spendwatch.toml"
    path.write_text(TOML)
    out = io.StringIO()
    now = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
    assert cmd_check(parse("budgets", "check", "--config", str(path)), now=now, out=out) == 0
    assert out.getvalue() == (
        f"{path}: 1 budget OK\n"
        "\n"
        "growth-llm\n"
        "  scope       service=chat-* model=gpt-4o*\n"
        "  period      month in America/New_York\n"
        "  limit       $250.75  (per request $2.50)\n"
        "  thresholds  50% info, 80% warning, 95% critical, 100% emergency\n"
        "  quotas      600 requests/min\n"
        "  at limit    degrade (gpt-4o -> gpt-4o-mini)\n"
        "  labels      team=growth\n"
        "  current     2024-03-01 00:00 EST -> 2024-04-01 00:00 EDT (resets in 21d 16h)\n"
    )


def test_check_error_names_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(TOML.replace('limit_usd = "250.75"', 'limit_usd = "-3"'))
    assert cmd_check(parse("budgets", "check", "--config", str(path))) == 2
    assert (
        capsys.readouterr().err
        == f"{path}: line 8: budgets[0].limit_usd: must be positive, got '-3'\n"
    )


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("budgets", "check", "--config", str(tmp_path / "none.toml"))
    assert args.func(args) == 2
    assert "file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("nope", "--limit-usd", "5", "--for", "2h"), "'nope' is not in"),
        (("growth-llm", "--limit-usd", "-5", "--for", "2h"), "--limit-usd: must be a positive"),
        (("growth-llm", "--limit-usd", "abc", "--for", "2h"), "not a decimal"),
        (("growth-llm", "--limit-usd", "5", "--for", "2 fortnights"), "--for:"),
    ],
)
def test_override_refuses_bad_input_before_any_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], needle: str
) -> None:
    path = tmp_path / "spendwatch.toml"
    path.write_text(TOML)
    args = parse("budgets", "override", *argv, "--config", str(path))
    assert args.func(args) == 2
    assert needle in capsys.readouterr().err


def test_override_reports_an_unreachable_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spendwatch.toml"
    path.write_text(TOML)  # [kafka] points at port 1: nothing listens there
    args = parse(
        "budgets",
        "override",
        "growth-llm",
        "--limit-usd",
        "5",
        "--for",
        "1h",
        "--config",
        str(path),
    )
    assert args.func(args) == 1
    assert "could not publish to 127.0.0.1:1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("1d", 86400), ("45s", 45), ("1H 5M", 3900)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "0h", "-1h", "2h foo"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_override_command_json_round_trip() -> None:
    at = datetime(2024, 5, 17, 9, tzinfo=UTC)
    cmd = OverrideCommand("growth", Decimal("750.5"), at + timedelta(hours=2), at, "launch", "ana")
    assert cmd.to_dict() == {
        "schema_version": 1,
        "command": "override",
        "budget": "growth",
        "limit_usd": "750.5",
        "until": "2024-05-17T11:00:00+00:00",
        "reason": "launch",
        "by": "ana",
        "at": "2024-05-17T09:00:00+00:00",
    }
    assert OverrideCommand.from_json(cmd.to_json()) == cmd
    assert cmd.limit_nusd == 750_500_000_000
    for bad in (b"nope", b"[]", b'{"budget": "x"}', b'{"command": "reboot"}'):
        with pytest.raises(ValueError):
            OverrideCommand.from_json(bad)
