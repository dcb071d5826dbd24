"""A report as plain text, Markdown, HTML (email: the chart by ``cid``, standalone: inline
``data:`` PNG) and a short Slack summary. Pure: every figure is formatted from the report's
integers with :mod:`streams.report.figures`."""

from __future__ import annotations

import base64
from html import escape
from typing import Final

from alerting.render.mrkdwn import escape_mrkdwn
from streams.report.figures import change, per_unit, percent, usd
from streams.report.model import Line, Report

CHART_CID: Final = "spendwatch-report-chart"
Table = tuple[str, list[str], list[list[str]]]  # title, header, rows


def _spend_rows(lines: tuple[Line, ...], total: int) -> list[list[str]]:
    return [
        [
            line.name,
            usd(line.cost_nusd),
            percent(line.cost_nusd, total),
            f"{line.calls:,}",
            usd(line.previous_nusd),
            change(line.cost_nusd, line.previous_nusd),
        ]
        for line in lines
    ]


def headline(r: Report) -> str:
    """``$12.34 spent over 1,234 calls (+5.0% against week 47 of 2026 (Nov 16))``."""
    t = r.total
    return (
        f"{usd(t.cost_nusd)} spent over {t.calls:,} calls "
        f"({change(t.cost_nusd, t.previous_nusd)} against {r.span.previous.label}: "
        f"{usd(t.previous_nusd)})"
    )


def tables(r: Report) -> list[Table]:
    """The report's sections in display order (empty ones left out)."""
    total = r.total.cost_nusd
    spend_head = ["", "spend", "share", "calls", "previous", "change"]
    out: list[Table] = [
        ("By service", ["service", *spend_head[1:]], _spend_rows(r.by_service, total)),
        ("By model", ["model", *spend_head[1:]], _spend_rows(r.by_model, total)),
        (f"By tag {r.tag}", [r.tag, *spend_head[1:]], _spend_rows(r.by_tag, total)),
        (
            "Top movers",
            ["", "name", "spend", "previous", "change in $"],
            [
                [
                    m.dimension,
                    m.line.name,
                    usd(m.line.cost_nusd),
                    usd(m.line.previous_nusd),
                    ("+" if m.line.delta_nusd > 0 else "-") + usd(abs(m.line.delta_nusd)),
                ]
                for m in r.movers
            ],
        ),
        (
            "Budgets",
            ["budget", "spent", "limit", "used", "period", "threshold alerts"],
            [
                [
                    b.name,
                    usd(b.spent_nusd),
                    usd(b.limit_nusd),
                    percent(b.spent_nusd, b.limit_nusd, floor=True),
                    b.period,
                    str(b.alerts),
                ]
                for b in r.budgets
            ],
        ),
        (
            "Cache",
            ["", "hits", "hit rate", "avoided cost"],
            [
                [
                    "this period",
                    f"{r.cache_hits:,}",
                    percent(r.cache_hits, r.total.calls),
                    usd(r.avoided_nusd),
                ],
                [
                    "previous",
                    f"{r.previous_cache_hits:,}",
                    percent(r.previous_cache_hits, r.total.previous_calls),
                    usd(r.previous_avoided_nusd),
                ],
            ],
        ),
        (
            "Model tiers",
            ["tier", "spend", "share", "calls", "share of calls", "previous share"],
            [
                [
                    t.name,
                    usd(t.cost_nusd),
                    percent(t.cost_nusd, total),
                    f"{t.calls:,}",
                    percent(t.calls, r.total.calls),
                    percent(t.previous_nusd, r.total.previous_nusd),
                ]
                for t in r.tiers
            ],
        ),
        (
            "Cost per unit",
            ["per", "units", "cost", "each", "previous each"],
            [
                [
                    u.unit,
                    f"{u.units:,}",
                    usd(u.cost_nusd),
                    per_unit(u.cost_nusd, u.units),
                    per_unit(u.previous_nusd, u.previous_units),
                ]
                for u in r.units
            ],
        ),
    ]
    return [t for t in out if t[2]]


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        parts = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _period_line(r: Report) -> str:
    c, p = r.span.current, r.span.previous
    return (
        f"{c.start:%Y-%m-%d %H:%M} to {c.end:%Y-%m-%d %H:%M} UTC ({r.span.timezone} periods); "
        f"compared with {p.label}: {p.start:%Y-%m-%d %H:%M} to {p.end:%Y-%m-%d %H:%M} UTC"
    )


def render_text(r: Report) -> str:
    out = [r.title, _period_line(r), "", headline(r)]
    for title, header, rows in tables(r):
        out += ["", f"{title}:", *("  " + line for line in _aligned(header, rows))]
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(r: Report) -> str:
    out = [f"# {r.title}", "", f"_{_period_line(r)}_", "", f"**{headline(r)}**"]
    for title, header, rows in tables(r):
        out += ["", f"## {title}", ""]
        out.append("| " + " | ".join(_md_cell(h or " ") for h in header) + " |")
        out.append("|" + "|".join(["---", *["---:"] * (len(header) - 1)]) + "|")
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def render_html(r: Report, *, chart_png: bytes | None = None, chart_cid: str | None = None) -> str:
    """HTML with the chart: ``chart_cid`` refers to an attached image (email), else
    ``chart_png`` is inlined as a ``data:`` URI (a standalone file)."""
    if chart_cid:
        img = f'<p><img src="cid:{escape(chart_cid)}" alt="spend chart"></p>'
    elif chart_png:
        data = base64.b64encode(chart_png).decode()
        img = f'<p><img src="data:image/png;base64,{data}" alt="spend chart"></p>'
    else:
        img = ""
    parts = [
        '<html><body style="font-family: sans-serif">',
        f"<h2>{escape(r.title)}</h2>",
        f'<p style="color:#555">{escape(_period_line(r))}</p>',
        f"<p><b>{escape(headline(r))}</b></p>",
        img,
    ]
    for title, header, rows in tables(r):
        head = "".join(f'<th align="left">{escape(h)}</th>' for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        parts.append(
            f'<h3>{escape(title)}</h3><table cellpadding="3" style="border-collapse:'
            f'collapse"><tr>{head}</tr>{body}</table>'
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_summary(r: Report) -> str:
    """The short Slack summary (mrkdwn): headline, top three services, top mover, budgets,
    cache. Names from the data are escaped (a model named ``<!channel>`` stays text)."""
    lines = [f"*{escape_mrkdwn(r.title)}*", headline(r)]
    top = ", ".join(f"{escape_mrkdwn(s.name)} {usd(s.cost_nusd)}" for s in r.by_service[:3])
    if top:
        lines.append(f"Top services: {top}")
    if r.movers:
        m = r.movers[0]
        sign = "+" if m.line.delta_nusd > 0 else "-"
        lines.append(
            f"Biggest move: {m.dimension} {escape_mrkdwn(m.line.name)} "
            f"{sign}{usd(abs(m.line.delta_nusd))} "
            f"({change(m.line.cost_nusd, m.line.previous_nusd)})"
        )
    for b in r.budgets:
        lines.append(
            f"Budget {escape_mrkdwn(b.name)}: {usd(b.spent_nusd)} of {usd(b.limit_nusd)} "
            f"({percent(b.spent_nusd, b.limit_nusd, floor=True)})"
        )
    lines.append(
        f"Cache: {percent(r.cache_hits, r.total.calls)} hit rate, {usd(r.avoided_nusd)} avoided"
    )
    return "\n".join(lines)
