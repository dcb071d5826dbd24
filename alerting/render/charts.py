"""PNG charts for emails (matplotlib's object API on the Agg canvas: no pyplot state, safe in
worker threads). Money arrives as integer nano-USD and is turned into float USD only to draw.

The size of every chart is fixed (``width_px`` x ``height_px`` at ``DPI``), so a mail client
lays it out before it loads, and tests can check it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Final

DPI: Final = 100
DIGEST_SIZE_PX: Final = (800, 360)
PALETTE: Final = (
    "#2563eb",
    "#dc2626",
    "#16a34a",
    "#9333ea",
    "#ea580c",
    "#0891b2",
    "#ca8a04",
    "#db2777",
    "#4b5563",
)


def figure(width_px: int, height_px: int) -> Any:
    """A blank figure of exactly ``width_px`` x ``height_px`` pixels."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (same pixel size as the figure; no tight cropping)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def usd_axis(ax: Any, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    formatter = FuncFormatter(lambda v, _: f"${v:,.2f}" if abs(v) >= 1 else f"${v:,.3f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(formatter)


def bar_chart(
    title: str,
    items: Sequence[tuple[str, int]],
    size_px: tuple[int, int] = DIGEST_SIZE_PX,
) -> bytes:
    """Horizontal bars of ``(label, cost_nusd)``, largest on top (the daily digest's chart)."""
    fig = figure(*size_px)
    ax = fig.add_subplot(1, 1, 1)
    shown = list(items)[:12]
    labels = [name for name, _ in shown][::-1]
    values = [cost / 1e9 for _, cost in shown][::-1]
    ax.barh(labels, values, color=[PALETTE[i % len(PALETTE)] for i in range(len(values))][::-1])
    ax.set_title(title, fontsize=11, loc="left")
    usd_axis(ax, "x")
    ax.grid(axis="x", alpha=0.3)
    fig.subplots_adjust(left=0.25, right=0.97, top=0.88, bottom=0.12)
    return png(fig)
