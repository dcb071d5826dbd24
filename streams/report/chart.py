"""The report's chart (PNG, :data:`SIZE_PX`): spend per hour (daily report) or per day
(weekly, monthly) stacked by service, and the model-tier split against the previous period."""

from __future__ import annotations

from typing import Final

from alerting.render.charts import PALETTE, figure, png, usd_axis
from streams.report.model import Report

SIZE_PX: Final = (1000, 420)
TOP_SERVICES: Final = 7


def report_chart(r: Report) -> bytes:
    fig = figure(*SIZE_PX)
    spend = fig.add_subplot(1, 3, (1, 2))
    tiers = fig.add_subplot(1, 3, 3)

    totals: dict[str, int] = {}
    for _, costs in r.series:
        for service, cost in costs:
            totals[service] = totals.get(service, 0) + cost
    top = [s for s, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SERVICES]]
    labels = [label[5:10] if r.bucket == "day" else label[11:13] for label, _ in r.series]
    bottoms = [0.0] * len(r.series)
    for i, service in enumerate([*top, "other"]):
        values = []
        for _, costs in r.series:
            row = dict(costs)
            cost = (
                sum(c for s, c in row.items() if s not in top)
                if service == "other"
                else row.get(service, 0)
            )
            values.append(cost / 1e9)
        if not any(values):
            continue
        spend.bar(labels, values, bottom=bottoms, label=service, color=PALETTE[i % len(PALETTE)])
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    spend.set_title(
        f"Spend per {r.bucket} by service, {r.span.current.label}", fontsize=10, loc="left"
    )
    usd_axis(spend)
    spend.grid(axis="y", alpha=0.3)
    if len(labels) > 12:
        spend.tick_params(axis="x", labelrotation=60, labelsize=7)
    if totals:
        spend.legend(fontsize=7, loc="upper left")
    else:
        spend.text(0.5, 0.5, "no spend", ha="center", va="center", transform=spend.transAxes)

    names = [t.name for t in r.tiers]
    now = [t.cost_nusd / 1e9 for t in r.tiers]
    before = [t.previous_nusd / 1e9 for t in r.tiers]
    ys = list(range(len(names)))
    tiers.barh([y + 0.2 for y in ys], now, height=0.4, label="this period", color=PALETTE[0])
    tiers.barh([y - 0.2 for y in ys], before, height=0.4, label="previous", color="#9ca3af")
    tiers.set_yticks(ys, names, fontsize=8)
    tiers.invert_yaxis()
    tiers.set_title("Spend by model tier", fontsize=10, loc="left")
    usd_axis(tiers, "x")
    tiers.tick_params(axis="x", labelsize=7)
    tiers.legend(fontsize=7)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.18, wspace=0.55)
    return png(fig)
