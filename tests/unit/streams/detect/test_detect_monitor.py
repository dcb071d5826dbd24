"""SpikeMonitor on explicit minute series: exact flagged minutes, alert counts, ids, timing."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import pytest

from schemas.alerts import Alert, Contributor, alert_id_for
from streams.detect import DetectSettings, MinuteBucket, SpikeMonitor
from tests.unit.streams.detect.helpers_detect import at, bucket, normal_usd


def feed(monitor: SpikeMonitor, buckets: Iterable[MinuteBucket]) -> list[tuple[int, Alert]]:
    """Observe every bucket; return (minute observed, alert) pairs."""
    out: list[tuple[int, Alert]] = []
    for b in buckets:
        minute = int((b.minute_start - at(0)).total_seconds()) // 60
        out += [(minute, a) for a in monitor.observe(b)]
    return out


def series(n: int, usd: Callable[[int], str], **kw: object) -> list[MinuteBucket]:
    return [bucket(m, usd(m), **kw) for m in range(n)]  # type: ignore[arg-type]


def runaway_usd(m: int) -> str:
    return "4.00" if m in (60, 61, 62) else normal_usd(m)


def test_runaway_fires_once_at_its_second_minute_and_resolves_after_three_calm_minutes() -> None:
    buckets = series(90, runaway_usd)
    # the looper agent carries the runaway: it must head the contributors
    for m in (60, 61, 62):
        buckets[m] = bucket(m, "4.00", by_tag={"agent:looper": 3_000_000_000, "agent:ui": 10**9})
    alerts = feed(SpikeMonitor(DetectSettings()), buckets)

    assert [(m, a.status) for m, a in alerts] == [(61, "firing"), (65, "resolved")]
    fired, resolved = alerts[0][1], alerts[1][1]
    expected_id = alert_id_for("spike", "svc", "spend", at(60).isoformat())
    assert fired.alert_id == resolved.alert_id == expected_id
    assert fired.kind == "spike" and fired.severity == "warning"
    assert fired.fired_at == at(62)  # end of minute 61
    assert resolved.fired_at == at(66)  # end of minute 65
    # Minute 60 (pending, not yet excluded) sits in minute 61's window: 29 x 1.00,
    # 30 x 1.20 and 4.00 -> median 1.20.
    assert fired.figures["observed"] == "4.000000000"
    assert fired.figures["baseline"] == "1.200000000"
    assert fired.figures["ratio"] == "3.33"
    assert fired.figures["excess_usd"] == "5.600000000"
    assert fired.figures["episode_start"] == at(60).isoformat()
    assert fired.figures["window_minutes"] == "2"
    assert fired.labels == {
        "service": "svc",
        "metric": "spend",
        "detector": "spike",
        "cause": "costlier_calls",
    }
    assert fired.contributors == (
        Contributor("model", "gpt-4o", 8_000_000_000, "1.00"),
        Contributor("tag:agent", "looper", 6_000_000_000, "0.75"),
        Contributor("tag:agent", "ui", 2_000_000_000, "0.25"),
    )
    # excess over the episode: 60: 4.00 - 1.10, 61: 4.00 - 1.20, 62: 4.00 - 1.10
    assert resolved.figures["excess_usd"] == "8.600000000"
    assert resolved.figures["peak_ratio"] == "3.64"
    assert resolved.figures["resolution"] == "returned_to_baseline"
    assert resolved.figures["episode_minutes"] == "6"
    assert resolved.status == "resolved" and resolved.severity == "warning"


def test_replay_gives_identical_alerts() -> None:
    first = feed(SpikeMonitor(), series(90, runaway_usd))
    second = feed(SpikeMonitor(), series(90, runaway_usd))
    assert [(m, a.to_dict()) for m, a in first] == [(m, a.to_dict()) for m, a in second]


def test_a_one_minute_spike_is_not_an_alert() -> None:
    alerts = feed(SpikeMonitor(), series(90, lambda m: "8.00" if m == 60 else normal_usd(m)))
    assert alerts == []
    # positive control: the same minute pages when one minute is enough to confirm
    one = DetectSettings.from_config({"confirm_min": 1})
    alerts = feed(SpikeMonitor(one), series(90, lambda m: "8.00" if m == 60 else normal_usd(m)))
    assert [(m, a.status) for m, a in alerts] == [(60, "firing"), (63, "resolved")]


def test_verdict_flags_exactly_the_runaway_minutes() -> None:
    monitor = SpikeMonitor()
    flagged = []
    for b in series(90, runaway_usd):
        _, verdict = monitor.observe_verbose(b)
        assert verdict is not None
        if verdict.spike_anomalous:
            flagged.append(verdict.minute - int(at(0).timestamp()) // 60)
        assert (verdict.spike_score >= 0.5) == verdict.spike_anomalous
    assert flagged == [60, 61, 62]


def test_cents_never_page_but_a_lower_min_delta_does() -> None:
    # baseline $0.010 / $0.012 a minute, three minutes at $0.04 (3.6x): $0.03 above baseline
    def tiny(m: int) -> str:
        if m in (60, 61, 62):
            return "0.040"
        return "0.010" if m % 2 == 0 else "0.012"

    assert feed(SpikeMonitor(DetectSettings()), series(90, tiny)) == []
    strict = DetectSettings.from_config({"min_delta_usd_per_min": "0.02"})
    alerts = feed(SpikeMonitor(strict), series(90, tiny))
    assert [(m, a.status) for m, a in alerts] == [(61, "firing"), (65, "resolved")]


def heavy_tail(runaway: dict[int, tuple[int, str]], n: int = 90) -> list[MinuteBucket]:
    """A small service: 5 / 7 calls a minute (median 6), $0.06 a minute except an expensive
    call every fifth minute ($0.40); ``runaway`` maps minutes to (calls, usd)."""
    out = []
    for m in range(n):
        calls, usd = runaway.get(m, (5 if m % 2 == 0 else 7, "0.40" if m % 5 == 0 else "0.06"))
        out.append(bucket(m, usd, requests=calls))
    return out


def test_two_minute_call_surge_catches_a_runaway_the_spend_noise_hides() -> None:
    # Minutes 80-81: 16 calls and $0.20 each. Per minute the spend is inside the noise (level
    # $0.06, scale (q90 $0.40 - $0.06) / 1.2816 = $0.265: z 0.53) and calls rise by 9 < 10.
    # Over 80+81: 32 calls against 2 x 7 (minute 81's window 21..80: 29 x 5, 30 x 7, 16 ->
    # median 7, MAD 1), noise scale max(sqrt(2) x 1.4826, sqrt(14)) = sqrt(14):
    # z = 18 / sqrt(14) = 4.81 >= 4.5, 2.29x, each minute 16 >= 1.5 x 7, |16 - 16| = 0, and
    # spend $0.40 against 2 x $0.06: +$0.28 >= 2 x $0.05, 3.3x.
    runaway = {80: (16, "0.20"), 81: (16, "0.20")}
    monitor = SpikeMonitor()
    alerts: list[tuple[int, Alert]] = []
    scores = {}
    for b in heavy_tail(runaway):
        out, verdict = monitor.observe_verbose(b)
        assert verdict is not None
        minute = verdict.minute - int(at(0).timestamp()) // 60
        scores[minute] = verdict.spike_score
        alerts += [(minute, a) for a in out]
    margin = 18 / (4.5 * math.sqrt(14))
    assert scores[81] == pytest.approx(margin / (1 + margin))
    assert scores[80] < 0.5 and scores[82] < 0.5
    assert [(m, a.status) for m, a in alerts] == [(81, "firing"), (84, "resolved")]
    fired = alerts[0][1]
    assert fired.alert_id == alert_id_for("spike", "svc", "spend", at(80).isoformat())
    assert fired.figures["episode_start"] == at(80).isoformat()
    assert fired.labels["cause"] == "runaway_loop"
    # both minutes of the episode: 0.20 - 0.06 each
    assert alerts[1][1].figures["excess_usd"] == "0.280000000"
    # the rule off: the per-minute rules alone stay silent
    assert feed(SpikeMonitor(DetectSettings(pair_z_threshold=0)), heavy_tail(runaway)) == []


def test_two_minute_rule_ignores_weak_bursts_and_cents() -> None:
    # 15 calls each: 30 vs 14 is z 16 / sqrt(14) = 4.28 < 4.5
    assert feed(SpikeMonitor(), heavy_tail({80: (15, "0.20"), 81: (15, "0.20")})) == []
    # a one-minute burst next to a busy minute: |40 - 11| = 29 > 3 x sqrt(51)
    assert feed(SpikeMonitor(), heavy_tail({80: (40, "0.20"), 81: (11, "0.10")})) == []
    # a real call surge worth cents: $0.20 over two minutes against $0.12 is +$0.08 < $0.10
    assert feed(SpikeMonitor(), heavy_tail({80: (16, "0.10"), 81: (16, "0.10")})) == []
    # positive control: 16 calls and $0.20 in each minute is a surge (see the test above)
    alerts = feed(SpikeMonitor(), heavy_tail({80: (16, "0.20"), 81: (16, "0.20")}))
    assert [(m, a.status) for m, a in alerts] == [(81, "firing"), (84, "resolved")]


def test_cold_start_is_silent_below_the_absolute_rule() -> None:
    # 3x the first minutes, but a new service below $2/min: no alert before 30 min of history
    usd = {10: "1.50", 11: "1.50", 12: "1.50"}
    alerts = feed(SpikeMonitor(), series(40, lambda m: usd.get(m, "0.50")))
    assert alerts == []
    # positive control: with the absolute rule at $1/min the same minutes page
    low = DetectSettings.from_config({"cold_start_usd_per_min": "1"})
    alerts = feed(SpikeMonitor(low), series(40, lambda m: usd.get(m, "0.50")))
    assert [(m, a.status) for m, a in alerts] == [(11, "firing"), (15, "resolved")]


def test_cold_start_absolute_rule_catches_a_new_runaway() -> None:
    alerts = feed(SpikeMonitor(), series(20, lambda m: "5.00" if 10 <= m < 15 else "0.50"))
    assert [(m, a.status) for m, a in alerts] == [(11, "firing"), (17, "resolved")]
    fired = alerts[0][1]
    assert fired.labels["cause"] == "new_service"
    assert fired.figures["baseline"] == "0.500000000"  # median of the minutes seen so far
    assert fired.severity == "critical"  # 10x


def test_a_big_steady_new_service_does_not_page_on_a_restart() -> None:
    assert feed(SpikeMonitor(), series(40, lambda m: "9.00" if m % 2 else "9.50")) == []
    # positive control: the same service tripling in its tenth minute does
    alerts = feed(SpikeMonitor(), series(40, lambda m: "28.00" if 10 <= m < 14 else "9.25"))
    assert [(m, a.status) for m, a in alerts] == [(11, "firing"), (16, "resolved")]


def test_time_of_day_pattern_alerts_while_learning_then_not() -> None:
    """09:00-10:00 costs $3/min every day: alerts on days 1-3, silence from day 4 on."""

    def daily(m: int) -> str:
        return "3.00" if 540 <= m % 1440 < 600 else normal_usd(m)

    alerts = feed(SpikeMonitor(), series(4 * 1440, daily))
    expected = []
    for day in range(3):
        expected += [(day * 1440 + 541, "firing"), (day * 1440 + 602, "resolved")]
    assert [(m, a.status) for m, a in alerts] == expected


def test_a_lasting_level_shift_becomes_the_baseline() -> None:
    alerts = feed(SpikeMonitor(), series(260, lambda m: "3.00" if m >= 60 else normal_usd(m)))
    assert [(m, a.status) for m, a in alerts] == [(61, "firing"), (182, "resolved")]
    # relearn after 120 min: at minute 179 the episode's minutes rejoin the baseline
    assert alerts[1][1].figures["resolution"] == "baseline_adapted"


def test_relearn_off_keeps_the_alert_firing() -> None:
    settings = DetectSettings.from_config({"relearn_after_min": 0})
    alerts = feed(SpikeMonitor(settings), series(260, lambda m: "3.00" if m >= 60 else "1.10"))
    assert [(m, a.status) for m, a in alerts] == [(61, "firing")]
    # positive control: with relearning on (the default) the same shift resolves
    alerts = feed(SpikeMonitor(), series(260, lambda m: "3.00" if m >= 60 else "1.10"))
    assert [(m, a.status) for m, a in alerts] == [(61, "firing"), (182, "resolved")]


def test_error_rate_spike_per_provider() -> None:
    def b(m: int) -> MinuteBucket:
        errors = 30 if m in (60, 61, 62) else 1
        return bucket(m, normal_usd(m), requests=100, errors=errors, provider="openai")

    alerts = feed(SpikeMonitor(), [b(m) for m in range(90)])
    assert [(m, a.kind, a.status) for m, a in alerts] == [
        (61, "failure", "firing"),
        (65, "failure", "resolved"),
    ]
    fired = alerts[0][1]
    assert fired.alert_id == alert_id_for("failure", "svc", "error_rate:openai", at(60).isoformat())
    assert fired.severity == "warning"
    assert fired.labels["provider"] == "openai"
    assert fired.figures["errors"] == "60" and fired.figures["requests"] == "200"
    assert fired.figures["observed"] == "0.30"
    assert fired.figures["baseline"] == "0.0100"


def test_outage_is_critical_even_for_a_new_service() -> None:
    alerts = feed(
        SpikeMonitor(),
        [bucket(m, "0.50", requests=20, errors=20 if m >= 5 else 0, provider="anthropic")
         for m in range(12)],
    )  # fmt: skip
    assert [(m, a.status) for m, a in alerts] == [(6, "firing")]
    assert alerts[0][1].severity == "critical"
    assert "outage" in alerts[0][1].title


def test_busy_service_going_silent_alerts_through_close_idle() -> None:
    monitor = SpikeMonitor()
    assert feed(monitor, series(60, normal_usd)) == []
    fired: list[tuple[int, Alert]] = []
    for minute in range(61, 71):  # input complete through minute - 1
        fired += [(minute - 1, a) for a in monitor.close_idle(at(minute))]
    assert [(m, a.status) for m, a in fired] == [(62, "firing")]
    alert = fired[0][1]
    assert alert.alert_id == alert_id_for("failure", "svc", "traffic", at(60).isoformat())
    assert alert.severity == "critical"
    assert alert.figures["baseline"] == "10.0"
    # traffic returns at minute 70: resolved after three normal minutes; no spend spike
    back = feed(monitor, [bucket(m, normal_usd(m)) for m in range(70, 80)])
    assert [(m, a.alert_id, a.status) for m, a in back] == [(72, alert.alert_id, "resolved")]


def test_a_gap_between_buckets_counts_as_silence_too() -> None:
    monitor = SpikeMonitor()
    alerts = feed(monitor, [*series(60, normal_usd), *series(80, normal_usd)[70:]])
    assert [(m, a.kind, a.status) for m, a in alerts] == [
        (70, "failure", "firing"),  # minutes 60..62 silent, reported when minute 70 arrives
        (72, "failure", "resolved"),
    ]
    assert alerts[0][1].figures["silent_since"] == at(60).isoformat()


def test_late_bucket_is_ignored_and_counted() -> None:
    monitor = SpikeMonitor()
    feed(monitor, series(10, normal_usd))
    assert monitor.observe(bucket(5, "100.00")) == []
    assert monitor.stats.late_buckets == 1
    # positive control: in order, the same two dear minutes page
    monitor = SpikeMonitor(DetectSettings.from_config({"min_history_min": 3}))
    alerts = feed(monitor, [*series(10, normal_usd), bucket(10, "100.00"), bucket(11, "100.00")])
    assert [(m, a.status) for m, a in alerts] == [(11, "firing")]


def test_long_silent_service_is_evicted_and_its_alert_expires() -> None:
    monitor = SpikeMonitor()
    feed(monitor, series(60, normal_usd))
    fired = monitor.close_idle(at(63))
    assert [a.status for a in fired] == ["firing"]
    expired = monitor.close_idle(at(63 + 7 * 1440 + 100))
    assert [(a.alert_id, a.status, a.figures["resolution"]) for a in expired] == [
        (fired[0].alert_id, "resolved", "expired")
    ]
    assert monitor.services == [] and monitor.stats.evicted_services == 1


def test_seeded_history_skips_the_cold_start() -> None:
    monitor = SpikeMonitor()
    assert monitor.seed(series(60, normal_usd)) == 60
    alerts = feed(monitor, [bucket(m, runaway_usd(m)) for m in range(60, 70)])
    assert [(m, a.status) for m, a in alerts] == [(61, "firing"), (65, "resolved")]


def test_disabled_monitor_is_silent() -> None:
    monitor = SpikeMonitor(DetectSettings.from_config({"enabled": False}))
    assert feed(monitor, series(90, runaway_usd)) == []
    assert monitor.close_idle(at(200)) == []
    # positive control: enabled, the same input pages for the runaway and the silence
    monitor = SpikeMonitor(DetectSettings.from_config({"enabled": True}))
    assert [(m, a.status) for m, a in feed(monitor, series(90, runaway_usd))] == [
        (61, "firing"),
        (65, "resolved"),
    ]
    assert [a.labels["detector"] for a in monitor.close_idle(at(200))] == ["traffic_drop"]
