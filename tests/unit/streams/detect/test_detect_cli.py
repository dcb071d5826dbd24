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
    # positive control: a $3.50 minimum still lets the $3.90 excess through
    assert run_cli([str(csv), "--config", str(config), "-o", str(out), "--min-delta", "3.5"]) == 0
    rows = out.read_text().splitlines()[1:]
    assert [i for i, r in enumerate(rows) if r.endswith(",1")] == [35, 36, 37]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2025-03-03T00:00:00Z,1\n2025-03-03T00:00:00Z,1\n", "same timestamp"),
        ("2025-03-03T00:00:00Z,1\nyesterday,1\n", "line 2: bad timestamp"),
        ("2025-03-03T00:00:00Z,1\n2025-03-03T00:01:00Z,abc\n", "line 2: bad value"),
        ("2025-03-03T00:00:00Z,1\n2025-03-03T00:01:00Z,NaN\n", "line 2: value must be"),
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


def test_bad_timezone_is_a_clear_error(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "spend.csv", 60, VALUES)
    assert run_cli([str(csv), "--config", str(config), "--timezone", "Mars/Olympus"]) == 2
    assert "--timezone 'Mars/Olympus' is not an IANA time zone" in capsys.readouterr().err


def test_missing_steps_count_as_zero(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "gappy.csv"
    csv.write_text("2025-03-03T00:00:00Z,1\n2025-03-03T00:01:00Z,1\n2025-03-03T00:04:00Z,1\n")
    assert run_cli([str(csv), "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 4
    assert "interval 60s, 2 missing steps counted as 0" in err


# -- real-shaped exports: what spreadsheets, pandas and billing consoles write -------------------


def scored(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0] == "timestamp,value,anomaly_score,alert"
    return [line.split(",") for line in lines[1:]]


def reference(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    """The tidy file's output: one row a minute, offsets, in order."""
    csv = write_csv(tmp_path / "tidy.csv", 60, VALUES)
    assert run_cli([str(csv), "--config", str(config)]) == 0
    return scored(capsys.readouterr()[0])


def test_timestamps_without_offset_are_utc_unless_told(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tidy = reference(tmp_path, config, capsys)
    # "2025-03-03 00:00:00": pandas' and most spreadsheets' default
    naive = tmp_path / "naive.csv"
    naive.write_text(
        "timestamp,value\n"
        + "".join(
            f"{(T0 + timedelta(minutes=i)).strftime('%Y-%m-%d %H:%M:%S')},{v}\n"
            for i, v in enumerate(VALUES)
        )
    )
    assert run_cli([str(naive), "-o", str(tmp_path / "a.csv"), "--config", str(config)]) == 0
    err = capsys.readouterr()[1]
    assert "note: 45 timestamps without an offset read as UTC (--timezone to change)" in err
    rows = scored((tmp_path / "a.csv").read_text())
    assert [r[2:] for r in rows] == [r[2:] for r in tidy]
    assert rows[0][0] == "2025-03-03 00:00:00"  # echoed as written
    assert "rise from 2025-03-03T00:35:00+00:00, fired at 2025-03-03T00:36:00+00:00" in err
    # the same file read as Paris time (UTC+1 in March): same scores, an hour earlier in UTC
    assert run_cli([str(naive), "--config", str(config), "--timezone", "Europe/Paris"]) == 0
    out, err = capsys.readouterr()
    assert [r[2:] for r in scored(out)] == [r[2:] for r in tidy]
    assert "note: 45 timestamps without an offset read as Europe/Paris\n" in err
    assert "rise from 2025-03-02T23:35:00+00:00, fired at 2025-03-02T23:36:00+00:00" in err


def test_repeated_and_unordered_timestamps_are_scored_in_time_order(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tidy = reference(tmp_path, config, capsys)
    stamp = [(T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(45)]
    # Row 36's $5.00 arrives as two line items of $2.50 at the same time; rows 10-19 come
    # in reverse order (an export sorted by something else).
    rows = [(stamp[i], v) for i, v in enumerate(VALUES) if i != 36]
    rows.insert(36, (stamp[36], "2.50"))
    rows.insert(37, (stamp[36], "2.50"))
    rows[10:20] = rows[10:20][::-1]
    messy = tmp_path / "messy.csv"
    messy.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    assert run_cli([str(messy), "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    got = scored(out)
    assert len(got) == 46  # one line per input line, in input order
    assert [(r[0], r[1]) for r in got] == rows
    by_time = {r[0]: r[2:] for r in got}
    assert by_time == {t: r[2:] for t, r in zip(stamp, tidy, strict=True)}
    assert [r[3] for r in got[36:38]] == ["1", "1"]  # both line items of the runaway minute
    assert "note: 9 rows earlier than the row before them: scored in time order" in err
    assert "note: 2 rows share a step with another row: summed, each row keeps its score" in err
    assert "46 rows, interval 60s, 0 missing steps counted as 0, 4 alert rows, 1 episodes" in err


def test_irregular_spacing_is_resampled_onto_the_dominant_step(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A five-minute export with clock jitter (+-20 s on every fourth row) and two rows lost;
    # today's refusal was "gap of 300s is not a multiple of 240s".
    lines = ["timestamp,value"]
    kept = [i for i in range(45) if i not in (5, 6)]
    for i in kept:
        jitter = (20 if i % 8 == 0 else -20) if i % 4 == 0 else 0
        t = T0 + timedelta(seconds=300 * i + jitter)
        lines.append(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{VALUES[i]}")
    csv = tmp_path / "jitter.csv"
    csv.write_text("\n".join(lines) + "\n")
    assert run_cli([str(csv), "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    got = scored(out)
    assert len(got) == 43
    jittered = sum(1 for i in kept if i % 4 == 0)  # the grid follows most rows, not row 0
    assert (
        f"note: {jittered} rows off the dominant 300s step: each moved to the nearest step" in err
    )
    assert "43 rows, interval 300s, 2 missing steps counted as 0" in err
    assert [kept[j] for j, r in enumerate(got) if r[3] == "1"] == [35, 36, 37]


def test_negative_values_are_refunds_and_a_spike_is_still_upwards(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = list(VALUES)
    values[20] = "-3.00"  # a credit note
    csv = write_csv(tmp_path / "refund.csv", 60, values)
    assert run_cli([str(csv), "--config", str(config)]) == 0
    got = scored(capsys.readouterr()[0])
    assert got[20][1] == "-3.00" and got[20][3] == "0"
    assert [i for i, r in enumerate(got) if r[3] == "1"] == [35, 36, 37]
    # positive control: without the refund the same rows flag, and with a spike instead of
    # the refund that row is high too
    values[20] = "9.00"
    assert (
        run_cli([str(write_csv(tmp_path / "spike.csv", 60, values)), "--config", str(config)]) == 0
    )
    assert float(scored(capsys.readouterr()[0])[20][2]) >= 0.5


def test_gauge_averages_shared_steps_and_leaves_gaps_empty(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # CPU % every minute, two readings in minute 10, minutes 20-22 missing, then a climb
    lines = ["timestamp,value"]
    for i in range(60):
        if 20 <= i <= 22:
            continue
        t = (T0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        value = 90 if i >= 50 else 40 + (i % 3)
        lines.append(f"{t},{value}")
        if i == 10:
            lines.append(f"{t},44")
    csv = tmp_path / "cpu.csv"
    csv.write_text("\n".join(lines) + "\n")
    assert run_cli([str(csv), "--config", str(config), "--kind", "gauge"]) == 0
    out, err = capsys.readouterr()
    got = scored(out)
    assert "note: 2 rows share a step with another row: averaged" in err
    assert "58 rows, interval 60s, 3 missing steps left without a reading" in err
    assert got[10][2] == got[11][2]  # the two readings of minute 10 share its score
    assert [r[0][11:16] for r in got if r[3] == "1"][:2] == ["00:50", "00:51"]
    # the same file as spend would count the gap as $0 and the climb (x2.2) still alerts
    assert run_cli([str(csv), "--config", str(config)]) == 0
    assert "3 missing steps counted as 0" in capsys.readouterr()[1]
