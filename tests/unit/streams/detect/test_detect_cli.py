"""``spendwatch detect FILE.csv``: the streaming detector over a timestamp,value series."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

import pytest

from streams.detect.cli import register
from tests.unit.streams.detect.helpers_detect import T0


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="spendwatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["detect", *argv])
    code: int = args.func(args)
    return code


def write_csv(path: Path, step_s: int, values: list[str], header: bool = True) -> Path:
    lines = ["timestamp,value"] if header else []
    for i, v in enumerate(values):
        lines.append(f"{(T0 + timedelta(seconds=i * step_s)).strftime('%Y-%m-%dT%H:%M:%SZ')},{v}")
    path.write_text("\n".join(lines) + "\n")
    return path


# 45 rows: $1.00 / $1.20 alternating, rows 35-37 at $5.00
VALUES = ["5.00" if i in (35, 36, 37) else ("1.00" if i % 2 == 0 else "1.20") for i in range(45)]


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "spendwatch.toml"
    path.write_text("[detect]\n")
    return path


@pytest.mark.parametrize("step_s", [60, 300])
def test_flags_exactly_the_runaway_rows(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], step_s: int
) -> None:
    csv = write_csv(tmp_path / "spend.csv", step_s, VALUES)
    assert run_cli([str(csv), "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "timestamp,value,anomaly_score,alert"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 45
    assert [i for i, r in enumerate(rows) if r[3] == "1"] == [35, 36, 37]
    assert [r[1] for r in rows] == VALUES  # values echoed unchanged
    # Row 35: baseline = median of rows 0-34 (18 x 1.00, 17 x 1.20) = 1.00; the ratio rule
    # (5.00 / 1.00 - 1) / (2 - 1) = 4 is the tightest, score 4 / (1 + 4) = 0.8.
    # Row 36: row 35 (pending) is in the window: median 1.10, margin 5/1.1 - 1 = 3.5454...
    # Row 37: rows 35-36 belong to the fired episode and leave the window: margin 4 again.
    assert [r[2] for r in rows[35:38]] == ["0.8000", f"{(5 / 1.1 - 1) / (5 / 1.1):.4f}", "0.8000"]
    assert all(float(r[2]) < 0.5 for i, r in enumerate(rows) if i not in (35, 36, 37))
    assert f"45 rows, interval {step_s}s, 0 missing steps counted as 0, 3 alert rows, " in err
    assert "1 episodes" in err


def test_out_file_and_min_delta_override(tmp_path: Path, config: Path) -> None:
    csv = write_csv(tmp_path / "spend.csv", 60, VALUES, header=False)
    out = tmp_path / "scored.csv"
    # an excess of $3.90 a row is below a $4 minimum: nothing alerts
    assert run_cli([str(csv), "--config", str(config), "--out", str(out), "--min-delta", "4"]) == 0
    rows = out.read_text().splitlines()[1:]
    assert len(rows) == 45 and all(r.endswith(",0") for r in rows)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2025-03-03T00:00:00Z,1\n2025-03-03T00:01:00Z,1\n2025-03-03T00:02:30Z,1\n", "multiple"),
        ("2025-03-03T00:00:00Z,1\n2025-03-03T00:00:00Z,1\n", "strictly increasing"),
        ("2025-03-03T00:00:00Z,1\n2025-03-03T00:01:00Z,-1\n", "line 2: value must be"),
        ("2025-03-03T00:00:00Z,1\n2025-03-03T00:01:00,1\n", "line 2: bad timestamp"),
        ("2025-03-03T00:00:00Z,1\n2025-03-03T00:01:00Z,abc\n", "line 2: bad value"),
        ("2025-03-03T00:00:00Z,1\n", "at least two rows"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    assert run_cli([str(csv), "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err


def test_missing_steps_count_as_zero(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "gappy.csv"
    csv.write_text("2025-03-03T00:00:00Z,1\n2025-03-03T00:01:00Z,1\n2025-03-03T00:04:00Z,1\n")
    assert run_cli([str(csv), "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 4
    assert "interval 60s, 2 missing steps counted as 0" in err
