"""Seeded, labelled synthetic spend scenarios for the spike / failure detectors.

Each scenario is one or more services with per-minute traffic (Poisson requests over three
models with log-normal costs and token counts, errors per provider, spend by agent tag) and
ground-truth intervals saying what an on-call engineer should, or should not, be paged for.

Labelling (positive = an alert is wanted):
* runaway loop (extra requests >= 3x baseline for >= 2 min), prompt bloat (tokens and cost per
  call x3-5), model switch to an expensive tier (spend x3+): positive ``spike``;
* a sustained step to >= 2.5x (e.g. a rollout): positive ``spike`` -- a sudden doubling of
  spend deserves a look; the alert resolves once the new level becomes the baseline;
* error-rate spike (>= 25 % from ~1 %), provider outage (100 %), a busy service going silent:
  positive ``failure``;
* noise, daily seasonality, slow growth, a +60 % step, one-minute spikes, a nightly
  shutdown, bursty human use, runaways worth cents (< min_delta): negative (no alert wanted).

Times are minute indices since the epoch; every scenario starts on 2025-03-03 00:00 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from streams.detect.bucket import MinuteBucket, minute_index, minute_start

DAY = 1440
T0 = minute_index(datetime(2025, 3, 3, tzinfo=UTC))

# name -> (provider, mean USD per call, mean tokens per call)
MODELS: dict[str, tuple[str, float, float]] = {
    "gpt-4o-mini": ("openai", 0.0006, 2000.0),
    "gpt-4o": ("openai", 0.012, 3000.0),
    "claude-opus-4": ("anthropic", 0.09, 3000.0),
}
BASE_MIX = {"gpt-4o-mini": 0.5, "gpt-4o": 0.45, "claude-opus-4": 0.05}
AGENTS = {"planner": 0.5, "worker": 0.3, "reviewer": 0.2}
ERROR_TYPES = ("rate_limit", "timeout", "server_error")
COST_SIGMA = 0.7  # log-normal spread of the cost of one call


@dataclass(frozen=True, slots=True)
class Truth:
    """A labelled interval ``[start, end]`` (minute indices, inclusive) of one service."""

    service: str
    kind: str  # "spike" | "failure"
    start: int
    end: int
    positive: bool
    label: str
    factor: float = 0.0  # for runaways: multiple of the baseline injected


@dataclass
class Scenario:
    name: str
    description: str
    start: int
    minutes: int
    warmup_until: int  # alerts starting before this minute are "learning", not scored
    buckets: list[MinuteBucket] = field(default_factory=list)
    truths: list[Truth] = field(default_factory=list)
    services: list[str] = field(default_factory=list)


@dataclass
class Timeline:
    """Per-minute knobs of one service's traffic (arrays of length ``n``)."""

    n: int
    rate: np.ndarray  # base requests per minute
    extra: np.ndarray  # runaway requests per minute (agent "looper", gpt-4o)
    size: np.ndarray  # tokens and cost per call multiplier (prompt bloat)
    switch: np.ndarray  # fraction of calls moved to claude-opus-4
    error_p: np.ndarray  # error probability per call (all providers)
    outage: np.ndarray  # error probability override for the anthropic+openai providers
    off: np.ndarray  # no traffic at all
    mix: dict[str, float] = field(default_factory=lambda: dict(BASE_MIX))  # share of calls

    @classmethod
    def flat(cls, n: int, rate: float) -> Timeline:
        return cls(
            n,
            np.full(n, rate),
            np.zeros(n),
            np.ones(n),
            np.zeros(n),
            np.full(n, 0.01),
            np.zeros(n),
            np.zeros(n, dtype=bool),
        )


def daily_profile(n: int, night: float = 0.15, peak_minute: int = 14 * 60) -> np.ndarray:
    """Smooth day/night factor in [night, 1] peaking at ``peak_minute`` UTC."""
    tod = (np.arange(n) + T0) % DAY
    phase = 2 * np.pi * (tod - peak_minute) / DAY
    return night + (1 - night) * (0.5 + 0.5 * np.cos(phase))


def simulate(rng: np.random.Generator, service: str, tl: Timeline) -> list[MinuteBucket]:
    """Sample minute buckets for ``tl`` (minutes with no calls produce no bucket)."""
    n = tl.n
    minutes = np.arange(n)
    spend_by_model: dict[str, np.ndarray] = {}
    tokens = np.zeros(n)
    requests = np.zeros(n, dtype=np.int64)
    req_by_provider: dict[str, np.ndarray] = {}
    err_by_provider: dict[str, np.ndarray] = {}
    expensive = np.zeros(n)
    expensive_calls = np.zeros(n, dtype=np.int64)
    looper_spend = np.zeros(n)
    live = ~tl.off
    for model, share in tl.mix.items():
        provider, cost, tok = MODELS[model]
        if model == "claude-opus-4":
            lam = tl.rate * (share + (1 - share) * tl.switch)
        else:
            lam = tl.rate * share * (1 - tl.switch)
        counts = rng.poisson(lam * live)
        extra = rng.poisson(tl.extra * live) if model == "gpt-4o" else np.zeros(n, dtype=np.int64)
        for part, cnt in (("base", counts), ("loop", extra)):
            total = int(cnt.sum())
            idx = np.repeat(minutes, cnt)
            mu = np.log(cost) - COST_SIGMA**2 / 2
            draws = rng.lognormal(mu, COST_SIGMA, total) * tl.size[idx]
            spend = np.bincount(idx, weights=draws, minlength=n)
            toks = np.bincount(idx, weights=rng.poisson(tok, total) * tl.size[idx], minlength=n)
            spend_by_model[model] = spend_by_model.get(model, np.zeros(n)) + spend
            if part == "loop":
                looper_spend += spend
            tokens += toks
            requests += cnt
            req_by_provider[provider] = req_by_provider.get(provider, 0) + cnt
            p = np.maximum(tl.error_p, tl.outage)
            errs = rng.binomial(cnt, np.clip(p, 0, 1))
            err_by_provider[provider] = err_by_provider.get(provider, 0) + errs
            if cost / tok * 1e6 >= 10:
                expensive += spend
                expensive_calls += cnt
    buckets: list[MinuteBucket] = []
    for i in np.nonzero(requests)[0]:
        by_model = {m: int(np.rint(v[i] * 1e9)) for m, v in spend_by_model.items() if v[i] > 0}
        spend = sum(by_model.values())
        loop = int(np.rint(looper_spend[i] * 1e9))
        base = spend - loop
        by_tag = {f"agent:{a}": int(base * s) for a, s in AGENTS.items()}
        if loop:
            by_tag["agent:looper"] = loop
        rp = {p: int(v[i]) for p, v in req_by_provider.items() if v[i]}
        ep = {p: int(v[i]) for p, v in err_by_provider.items() if v[i]}
        errors = sum(ep.values())
        types: dict[str, int] = {}
        for k in range(errors):
            t = ERROR_TYPES[k % len(ERROR_TYPES)]
            types[t] = types.get(t, 0) + 1
        exp = min(int(np.rint(expensive[i] * 1e9)), spend)
        buckets.append(
            MinuteBucket(
                service=service,
                minute_start=minute_start(T0 + int(i)),
                spend_nusd=spend,
                requests=int(requests[i]),
                errors=errors,
                tokens=int(tokens[i]),
                expensive_spend_nusd=exp,
                expensive_requests=int(expensive_calls[i]),
                by_model=by_model,
                by_tag=by_tag,
                requests_by_provider=rp,
                errors_by_provider=ep,
                errors_by_type=types,
            )
        )
    return buckets


def _scenario(name: str, description: str, days: float, warmup_days: float = 0.0) -> Scenario:
    n = int(days * DAY)
    return Scenario(name, description, T0, n, T0 + int(warmup_days * DAY))


def _add(sc: Scenario, rng: np.random.Generator, service: str, tl: Timeline) -> None:
    sc.services.append(service)
    sc.buckets += simulate(rng, service, tl)


def _spread_times(
    rng: np.random.Generator, n: int, count: int, lo: int, gap: int, length: int
) -> list[int]:
    """``count`` start minutes in ``[lo, n - length)`` at least ``gap`` apart."""
    starts: list[int] = []
    while len(starts) < count:
        t = int(rng.integers(lo, n - length))
        if all(abs(t - s) >= gap for s in starts):
            starts.append(t)
    return sorted(starts)


def generate_all(seed: int = 20250303) -> list[Scenario]:
    """Every scenario, deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[Scenario] = []

    sc = _scenario("steady", "flat Poisson traffic at 5, 30 and 150 calls/min; no anomaly", 3)
    for svc, rate in (("steady-small", 5.0), ("steady-mid", 30.0), ("steady-big", 150.0)):
        _add(sc, rng, svc, Timeline.flat(sc.minutes, rate))
    out.append(sc)

    sc = _scenario(
        "daily_seasonality",
        "day/night cycle (15 %..100 %) plus a 09:00-18:00 business-hours jump x1.8; the "
        "first 3 days are the learning period",
        6,
        warmup_days=3,
    )
    tl = Timeline.flat(sc.minutes, 40.0)
    tod = (np.arange(sc.minutes) + T0) % DAY
    tl.rate = 40.0 * daily_profile(sc.minutes) * np.where((tod >= 540) & (tod < 1080), 1.8, 1.0)
    _add(sc, rng, "seasonal", tl)
    out.append(sc)

    sc = _scenario("slow_growth", "traffic grows 40 % a day, compounding", 4)
    tl = Timeline.flat(sc.minutes, 20.0)
    tl.rate = 20.0 * 1.4 ** (np.arange(sc.minutes) / DAY)
    _add(sc, rng, "growing", tl)
    out.append(sc)

    sc = _scenario("legit_step", "a feature rollout raises traffic by 60 % at once", 3)
    tl = Timeline.flat(sc.minutes, 30.0)
    step = int(1.5 * DAY)
    tl.rate[step:] *= 1.6
    _add(sc, rng, "rollout", tl)
    sc.truths.append(Truth("rollout", "spike", T0 + step, T0 + step + 120, False, "step x1.6"))
    out.append(sc)

    sc = _scenario("big_step", "a sustained step to x3 (positive: paged, then absorbed)", 3)
    tl = Timeline.flat(sc.minutes, 30.0)
    tl.rate[step:] *= 3.0
    _add(sc, rng, "tripled", tl)
    sc.truths.append(Truth("tripled", "spike", T0 + step, T0 + step + 120, True, "step x3", 3.0))
    out.append(sc)

    sc = _scenario("short_spikes", "six one-minute bursts x5 a day (negative)", 3)
    tl = Timeline.flat(sc.minutes, 30.0)
    for t in _spread_times(rng, sc.minutes, 18, 60, 60, 1):
        _runaway(tl, t, 1, 5.0)
        sc.truths.append(Truth("bursty-batch", "spike", T0 + t, T0 + t, False, "1-min x5"))
    _add(sc, rng, "bursty-batch", tl)
    out.append(sc)

    sc = _scenario(
        "runaway",
        "runaway loops x3..x10 for 2..30 min on a seasonal service, 3 a day",
        4,
    )
    tl = Timeline.flat(sc.minutes, 60.0)
    tl.rate = 60.0 * daily_profile(sc.minutes, night=0.3)
    for t in _spread_times(rng, sc.minutes, 12, 90, 180, 30):
        factor = float(rng.choice([3.0, 4.0, 6.0, 10.0]))
        length = int(rng.choice([2, 3, 5, 10, 30]))
        _runaway(tl, t, length, factor)
        sc.truths.append(
            Truth("agents", "spike", T0 + t, T0 + t + length - 1, True, "runaway", factor)
        )
    _add(sc, rng, "agents", tl)
    out.append(sc)

    sc = _scenario(
        "runaway_low_volume",
        "a 6 calls/min single-model service ($0.07/min): runaways x3..x6 for 2..10 min",
        3,
    )
    tl = Timeline.flat(sc.minutes, 6.0)
    tl.mix = {"gpt-4o": 1.0}
    for t in _spread_times(rng, sc.minutes, 9, 90, 180, 10):
        factor = float(rng.choice([3.0, 4.0, 6.0]))
        length = int(rng.choice([2, 3, 5, 10]))
        _runaway(tl, t, length, factor)
        sc.truths.append(
            Truth("small-agent", "spike", T0 + t, T0 + t + length - 1, True, "runaway", factor)
        )
    _add(sc, rng, "small-agent", tl)
    out.append(sc)

    sc = _scenario(
        "runaway_heavy_tail",
        "a 6 calls/min service where 5 % of calls cost 8x the mean (known limit): runaways "
        "x3..x6 for 2..10 min",
        3,
    )
    tl = Timeline.flat(sc.minutes, 6.0)
    for t in _spread_times(rng, sc.minutes, 9, 90, 180, 10):
        factor = float(rng.choice([3.0, 4.0, 6.0]))
        length = int(rng.choice([2, 3, 5, 10]))
        _runaway(tl, t, length, factor)
        sc.truths.append(
            Truth("mixed-agent", "spike", T0 + t, T0 + t + length - 1, True, "runaway", factor)
        )
    _add(sc, rng, "mixed-agent", tl)
    out.append(sc)

    sc = _scenario(
        "cents",
        "a service spending half a cent a minute runs away x5: worth cents (negative)",
        2,
    )
    tl = Timeline.flat(sc.minutes, 1.0)
    tl.rate *= 0.5
    for t in _spread_times(rng, sc.minutes, 6, 90, 180, 10):
        _runaway(tl, t, 10, 5.0)
        sc.truths.append(Truth("tiny", "spike", T0 + t, T0 + t + 9, False, "runaway < min_delta"))
    _add(sc, rng, "tiny", tl)
    out.append(sc)

    sc = _scenario("prompt_bloat", "tokens and cost per call x3..x5 for 20 min", 3)
    tl = Timeline.flat(sc.minutes, 30.0)
    for t in _spread_times(rng, sc.minutes, 6, 90, 240, 20):
        factor = float(rng.choice([3.0, 5.0]))
        tl.size[t : t + 20] = factor
        sc.truths.append(
            Truth("rag-bot", "spike", T0 + t, T0 + t + 19, True, "prompt bloat", factor)
        )
    _add(sc, rng, "rag-bot", tl)
    out.append(sc)

    sc = _scenario(
        "model_switch",
        "30 % / 60 % of calls move to claude-opus-4 for 30 min (spend x3.5 / x6)",
        3,
    )
    tl = Timeline.flat(sc.minutes, 30.0)
    for t in _spread_times(rng, sc.minutes, 6, 90, 240, 30):
        frac = float(rng.choice([0.3, 0.6]))
        tl.switch[t : t + 30] = frac
        sc.truths.append(Truth("router", "spike", T0 + t, T0 + t + 29, True, "model switch"))
    _add(sc, rng, "router", tl)
    out.append(sc)

    sc = _scenario("error_spike", "error rate 1 % -> 25 % for 15 min, 2 a day", 3)
    tl = Timeline.flat(sc.minutes, 40.0)
    for t in _spread_times(rng, sc.minutes, 6, 90, 240, 15):
        tl.error_p[t : t + 15] = 0.25
        sc.truths.append(Truth("flaky", "failure", T0 + t, T0 + t + 14, True, "error spike"))
    _add(sc, rng, "flaky", tl)
    out.append(sc)

    sc = _scenario("outage", "every call fails for 10 min, 2 a day", 3)
    tl = Timeline.flat(sc.minutes, 40.0)
    for t in _spread_times(rng, sc.minutes, 6, 90, 240, 10):
        tl.outage[t : t + 10] = 1.0
        sc.truths.append(Truth("down", "failure", T0 + t, T0 + t + 9, True, "outage"))
    _add(sc, rng, "down", tl)
    out.append(sc)

    sc = _scenario("drop_to_zero", "a 40 calls/min service goes silent for 20 min, 2 a day", 3)
    tl = Timeline.flat(sc.minutes, 40.0)
    for t in _spread_times(rng, sc.minutes, 6, 90, 240, 20):
        tl.off[t : t + 20] = True
        sc.truths.append(Truth("quiet", "failure", T0 + t, T0 + t + 19, True, "drop to zero"))
    _add(sc, rng, "quiet", tl)
    out.append(sc)

    sc = _scenario(
        "nightly_shutdown",
        "traffic stops 20:00-06:00 every night (legit); first 3 days are learning",
        6,
        warmup_days=3,
    )
    tl = Timeline.flat(sc.minutes, 30.0)
    tod = (np.arange(sc.minutes) + T0) % DAY
    tl.off = (tod >= 1200) | (tod < 360)
    _add(sc, rng, "office-hours", tl)
    out.append(sc)

    sc = _scenario(
        "cold_start",
        "new services appear mid-day; one starts with a $5/min runaway (absolute rule)",
        2,
    )
    for k, svc in enumerate(("newcomer-a", "newcomer-b")):
        tl = Timeline.flat(sc.minutes, 20.0 + 20 * k)
        tl.off[: DAY // 2 + 60 * k] = True
        _add(sc, rng, svc, tl)
    tl = Timeline.flat(sc.minutes, 10.0)
    born = DAY // 2 + 200
    tl.off[:born] = True
    _runaway(tl, born + 5, 20, 50.0)  # ~ $5/min from its 6th minute
    sc.truths.append(Truth("newcomer-c", "spike", T0 + born + 5, T0 + born + 24, True, "cold"))
    _add(sc, rng, "newcomer-c", tl)
    out.append(sc)

    sc = _scenario(
        "bursty_human_use",
        "an internal chat tool: idle, then 5-20 min sessions at ~$0.25/min (negative)",
        3,
    )
    tl = Timeline.flat(sc.minutes, 25.0)
    tl.off[:] = True
    for t in _spread_times(rng, sc.minutes, 24, 30, 90, 20):
        tl.off[t : t + int(rng.integers(5, 21))] = False
    _add(sc, rng, "chat-tool", tl)
    out.append(sc)

    for s in out:
        s.buckets.sort(key=lambda b: (b.minute_start, b.service))
    return out


def _runaway(tl: Timeline, t: int, length: int, factor: float) -> None:
    """Extra gpt-4o calls so that spend is about ``factor`` x its expected level."""
    mean_cost = sum(share * MODELS[m][1] for m, share in tl.mix.items())
    extra_spend = (factor - 1.0) * tl.rate[t : t + length] * mean_cost
    tl.extra[t : t + length] = extra_spend / MODELS["gpt-4o"][1]
