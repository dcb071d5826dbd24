"""A periodic report as the notifiers receive it: rendered once, by whoever built it.

``alerting`` does not know how a report is computed (``streams.report`` builds it); it carries
what each kind of receiver shows: email gets ``subject`` + ``text`` + ``html`` with the PNG
``chart`` embedded (``cid``), Slack gets the short ``summary``, the console one line, a webhook
all of it but the image.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReportMessage:
    """``key`` (``week:2026-11-23``) names the report: one delivery per receiver and key.
    ``html`` refers to the chart as ``cid:<chart_cid>``."""

    key: str
    subject: str
    text: str
    html: str
    summary: str
    chart_png: bytes = b""
    chart_cid: str = "spendwatch-report-chart"
