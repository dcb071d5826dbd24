"""The shapes beyond a spike: sustained drops, weekly rhythms, the warm-up's daily rise, the
graded score and its sensitivity. Every "nothing fires" case has its positive control."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from schemas.alerts import Alert, alert_id_for
from streams.detect import DetectSettings, MinuteBucket, SpikeMonitor
from streams.detect.exports import Grid, Kind
from streams.detect.offline import detect_grid
from streams.detect.rules.shift import shift_margins
from tests.unit.streams.detect.helpers_detect import at, bucket

DAY = 1440


def feed(monitor: SpikeMonitor, buckets: list[MinuteBucket]) -> list[tuple[int, Alert]]:
    out: list[tuple[int, Alert]] = []
    for b in buckets:
        minute = int((b.minute_start - at(0)).total_seconds()) // 60
        out += [(minute, a) for a in monitor.observe(b)]
    return out


# -- the shift rule, as a pure function ---------------------------------------------------------


def test_shift_rule_reads_the_median_of_the_last_minutes() -> None:
    s = DetectSettings()  # shift_min 5, z 3, min_ratio 2, min_delta $0.05 (nano-USD below)
    usd = 1e9
    # three of five minutes at $3 against a $1 level with a $0.20 scale: median $3, excess $2;
    # margins: z 2 / (3 x 0.2) = 3.33, dollars 2 / 0.05 = 40, ratio (3 - 1) / (2 - 1) = 2
    rise, drop = shift_margins(
        [3 * usd, 3 * usd, 1 * usd, 3 * usd, 1 * usd], usd, usd, 0.2 * usd, s
    )
    assert (rise, drop) == (pytest.approx(2.0), 0.0)
    # one dear minute does not move the median
    assert shift_margins([usd, usd, 5 * usd, usd, usd], usd, usd, 0.2 * usd, s) == (0.0, 0.0)
    # a fall to $0.20: excess $0.80, z 0.8 / 0.6 = 1.33, ratio (1 / 0.2 - 1) = 4, dollars 16
    _, drop = shift_margins([0.2 * usd] * 5, usd, usd, 0.2 * usd, s)
    assert drop == pytest.approx(0.8 / 0.6)
    # fewer than half the minutes present: no verdict; shift_min 0: off
    assert shift_margins([math.nan] * 3 + [0.2 * usd] * 2, usd, usd, 0.2 * usd, s) == (0.0, 0.0)
    off = DetectSettings.from_config({"shift_min": 0})
    assert shift_margins([0.2 * usd] * 5, usd, usd, 0.2 * usd, off) == (0.0, 0.0)


# -- a spend drop: the service still calls, but spends far less ---------------------------------


def calls_on(days: int, low: dict[int, str]) -> list[MinuteBucket]:
    """``days`` of 10 calls a minute at $1.10, except minutes in ``low``."""
    return [bucket(m, low.get(m, "1.10")) for m in range(days * DAY)]


def test_a_lasting_spend_drop_pages_after_the_warm_up() -> None:
    start = 3 * DAY + 600  # day 4, 10:00: the time of day is known by then
    low = {m: "0.30" for m in range(start, start + 30)}
    alerts = feed(SpikeMonitor(), calls_on(4, low))
    # The median of the last five minutes falls at the third low minute (start + 2), the
    # episode confirms at the next; it resolves three normal minutes after the median is back.
    assert [(m, a.labels["detector"], a.status) for m, a in alerts] == [
        (start + 3, "spend_drop", "firing"),
        (start + 34, "spend_drop", "resolved"),
    ]
    fired = alerts[0][1]
    assert fired.alert_id == alert_id_for("failure", "svc", "spend_drop", at(start + 2).isoformat())
    assert fired.kind == "failure"
    # the median of the last five minutes against the lower of the recent and seasonal levels
    assert (fired.figures["observed"], fired.figures["baseline"]) == ("0.300000000", "1.100000000")
    # positive control for the next test's silence: shift_min 0 turns the rule off
    off = SpikeMonitor(DetectSettings.from_config({"shift_min": 0}))
    assert feed(off, calls_on(4, low)) == []


def test_a_quiet_half_hour_every_day_is_no_drop() -> None:
    low = {d * DAY + 600 + i: "0.30" for d in range(4) for i in range(30)}
    alerts = feed(SpikeMonitor(), calls_on(4, low))
    assert [a.labels["detector"] for _, a in alerts if a.labels["detector"] == "spend_drop"] == []


# -- weekly rhythm: weekends are quiet ------------------------------------------------------------

T0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
STEP_S = 900  # quarter-hour rows: 96 a day


def weekly_grid(weeks: int) -> Grid:
    values: list[Decimal | None] = []
    for k in range(weeks * 7 * 96):
        weekend = (k // 96) % 7 >= 5
        values.append(Decimal("2.00") if weekend else Decimal("10.00"))
    return Grid(STEP_S, T0, values, list(range(len(values))), 0)


def drops_on_weekend(settings: DetectSettings, week: int) -> list[int]:
    result = detect_grid(weekly_grid(3), settings)
    weekend = range((week * 7 + 5) * 96, (week * 7 + 7) * 96)
    return [e.first for e in result.episodes if e.direction == "drop" and e.first in weekend]


def test_weekends_are_learned_as_the_time_of_the_week() -> None:
    # third week: the time-of-week median (last week's Saturday) predicted the service better
    # than the time-of-day one (five weekdays out of seven), so Saturday is no drop
    assert drops_on_weekend(DetectSettings(), week=2) == []
    # positive control: with the time-of-week baseline off, Saturday morning is a drop
    no_weeks = DetectSettings.from_config({"seasonal_weeks": 0})
    assert drops_on_weekend(no_weeks, week=2) == [(2 * 7 + 5) * 96 + 2]


# -- warm-up: the first days' daily rise -----------------------------------------------------------


def daily_grid(days: int, jump_at: int | None = None) -> Grid:
    """Half-hour rows of a smooth day/night cycle: $3 at night to $20 mid-afternoon; x3 for
    two hours from row ``jump_at``."""
    values: list[Decimal | None] = []
    for k in range(days * 48):
        phase = 2 * math.pi * ((k % 48) - 30) / 48  # peak at 15:00
        v = 3 + 17 * (0.5 + 0.5 * math.cos(phase))
        if jump_at is not None and jump_at <= k < jump_at + 4:
            v *= 3
        values.append(Decimal(f"{v:.2f}"))
    return Grid(1800, T0, values, list(range(len(values))), 0)


def test_the_first_days_daily_rise_does_not_page() -> None:
    # The trailing window is 60 rows (30 h): each morning is 3-6x its median. Before the
    # warm-up jump check this paged every morning of the first three days.
    assert detect_grid(daily_grid(5)).episodes == []
    # positive control: a sudden x3 on day two's afternoon pages at its second row (at night
    # the same x3 stays inside the day's range, which the 30 h window counts as its noise)
    result = detect_grid(daily_grid(5, jump_at=48 + 28))
    assert [(e.first, e.fired, e.direction) for e in result.episodes] == [(76, 77, "rise")]


# -- the graded score and the sensitivity ----------------------------------------------------------


def bump(factor: str) -> list[MinuteBucket]:
    return [bucket(m, factor if m in (60, 61, 62) else "1.10") for m in range(90)]


def scores(settings: DetectSettings, buckets: list[MinuteBucket]) -> list[float]:
    monitor = SpikeMonitor(settings)
    out = []
    for b in buckets:
        _, verdict = monitor.observe_verbose(b)
        assert verdict is not None
        out.append(verdict.score)
    return out


def test_score_rises_with_the_evidence() -> None:
    # first minute of a bump over a flat $1.10 (scale = the 5 % floor, $0.055): the ratio rule
    # is the tightest, margin (x / 1.10 - 1) / (2 - 1), score margin / (1 + margin)
    got = [scores(DetectSettings(), bump(f))[60] for f in ("1.65", "2.20", "3.30", "5.50")]
    margins = [(x / 1.10 - 1) for x in (1.65, 2.20, 3.30, 5.50)]
    assert got == pytest.approx([m / (1 + m) for m in margins])
    assert got == sorted(got) and got[1] == pytest.approx(0.5)  # 2x: exactly on the threshold


def test_sensitivity_moves_the_alert_threshold_not_the_score() -> None:
    # x1.8 for three minutes: margin 0.8, score 0.444 -- below 0.5 at the default sensitivity
    default = DetectSettings()
    keen = DetectSettings.from_config({"sensitivity": 0.6})  # alerts from score 0.4
    assert feed(SpikeMonitor(default), bump("1.98")) == []
    alerts = feed(SpikeMonitor(keen), bump("1.98"))
    assert [(m, a.status) for m, a in alerts] == [(61, "firing"), (65, "resolved")]
    # the same scores for the minutes before an episode exists (later, the warm-up's jump check
    # is only asked of a minute that would start an episode)
    assert scores(default, bump("1.98"))[:62] == scores(keen, bump("1.98"))[:62]
    assert scores(default, bump("1.98"))[60] == pytest.approx(0.8 / 1.8)


def test_a_reading_that_falls_is_an_anomaly_for_a_gauge() -> None:
    # a gauge (CPU %) of 40-42 for five days whose readings fall to 5 for an hour on day 5
    values: list[Decimal | None] = []
    for k in range(5 * 288):
        values.append(Decimal(5) if 4 * 288 + 100 <= k < 4 * 288 + 112 else Decimal(40 + k % 3))
    grid = Grid(300, T0, values, list(range(len(values))), 0)
    result = detect_grid(grid, kind="gauge")
    # each low reading is anomalous by itself (a reading may fail either way): the episode
    # starts at the first one
    assert [(e.direction, e.first) for e in result.episodes] == [("drop", 4 * 288 + 100)]
    # read as dollars per five minutes the same fall is as clear, once the median of the last
    # five steps has fallen (one quiet step of spend is no news)
    spend = detect_grid(grid, kind="spend")
    assert [(e.direction, e.first) for e in spend.episodes] == [("drop", 4 * 288 + 102)]


def test_one_low_reading_of_a_gauge_scores_but_does_not_page() -> None:
    # the gauge above, with a single reading of 5 on day 5: anomalous (score >= 0.5), the
    # lowest reading of five days, but one step does not confirm an episode
    values: list[Decimal | None] = [Decimal(40 + k % 3) for k in range(5 * 288)]
    dip = 4 * 288 + 100
    values[dip] = Decimal(5)
    grid = Grid(300, T0, values, list(range(len(values))), 0)
    result = detect_grid(grid, kind="gauge")
    assert result.episodes == []
    assert sum(result.alerts) == 0
    assert result.scores[dip] >= 0.5
    assert [k for k, v in enumerate(result.scores) if v >= 0.5 and k >= 3 * 288] == [dip]
    # read as spend or as a count of calls, one quiet step is not anomalous
    amount_kinds: tuple[Kind, ...] = ("spend", "count")
    for kind in amount_kinds:
        amounts = detect_grid(grid, kind=kind)
        assert amounts.scores[dip] < 0.5 and amounts.episodes == []


def test_a_spend_drop_open_at_a_restart_resolves_under_its_own_id() -> None:
    start = 3 * DAY + 600
    buckets = calls_on(4, {m: "0.30" for m in range(start, start + 30)})
    cut = start + 10  # the worker stops ten minutes into the drop
    fired = [a for _, a in feed(SpikeMonitor(), buckets[:cut]) if a.status == "firing"]
    assert [a.labels["detector"] for a in fired] == ["spend_drop"]
    restarted = SpikeMonitor()
    assert restarted.seed(buckets[:cut]) == cut
    assert restarted.restore(fired[0])
    rest = feed(restarted, buckets[cut:])
    assert [(m, a.alert_id, a.status) for m, a in rest] == [
        (start + 34, fired[0].alert_id, "resolved")
    ]
    # without the restore the restarted worker opens a second alert for the same drop
    fresh = SpikeMonitor()
    fresh.seed(buckets[:cut])
    again = [a for _, a in feed(fresh, buckets[cut:])]
    assert [a.status for a in again] == ["firing", "resolved"]
    assert again[0].alert_id != fired[0].alert_id
