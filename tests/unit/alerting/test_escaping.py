"""Text from events (service, model, tags) reaching Slack or email is shown, never acted on.

Hostile names - ``<!channel>``, ``<@U123>``, ``<https://evil.example|click here>``, mrkdwn
marks, HTML and script - go through the real builders (an unpriced alert from an event, alert
contributors, a digest, a report summary) and the real renderers; the rendered payloads are
checked: Slack text objects hold no ``<`` ``>`` (no mention, no link, no special command) and
no live formatting marks from the data, yet unescaping gives the names back; email HTML holds
only the renderer's own tags, with the names as text; subjects are single lines.
"""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from html.parser import HTMLParser
from typing import Any

from alerting.digest import BudgetLine, DigestAlert, DigestSummary, SpendLine
from alerting.notification import Notification
from alerting.notifiers import slack as slack_notifier
from alerting.notifiers.email import build_message
from alerting.report import ReportMessage
from schemas.alerts import Alert, Contributor
from streams.ingest import unpriced_alert
from streams.report.model import Line, Mover, Report
from streams.report.periods import span_of
from streams.report.render import render_html, render_summary

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MODEL = "<!channel> <@U123> <https://evil.example|click here> *bold* _it_ ~s~ `code` &amp;"
HTML = '<script>alert(1)</script><img src=x onerror="alert(2)"><a href="https://evil">x</a>'
TAG = "<!here> *urgent* \u202e\u200b"
CR = "line1\r\nBcc: victim@example.com\r\n\r\nbody"
HOSTILE = (MODEL, HTML, TAG)
# What the Slack escaping turns the formatting marks into (see alerting.render.mrkdwn).
LOOKALIKES = {"\u2217": "*", "\u02cd": "_", "\u223c": "~", "\u02cb": "`"}
OWN_TAGS = {"html", "body", "h2", "h3", "p", "small", "b", "table", "tr", "th", "td", "ul"}
OWN_TAGS |= {"li", "hr", "img"}


def alerts() -> tuple[Alert, ...]:
    event = {"service": "chat", "provider": "openai", "model": MODEL, "unpriced_reason": HTML}
    unpriced = unpriced_alert(event, NOW)
    spike = Alert(
        alert_id="spike-1",
        kind="spike",
        severity="critical",
        title=f"Spend spike on {MODEL}",
        summary=f"{HTML} spent {CR}",
        fired_at=NOW,
        labels={"service": "chat", "model": MODEL, "tag:team": TAG},
        figures={"spent_usd": "1.5"},
        contributors=(
            Contributor("model", MODEL, 1_000_000_000, "0.5"),
            Contributor("tag:team", TAG, 500_000_000, "0.25"),
            Contributor("tag:note", HTML, 500_000_000, "0.25"),
        ),
    )
    return unpriced, spike


def notifications() -> list[Notification]:
    digest = DigestSummary(
        day=date(2026, 12, 6),
        timezone="UTC",
        total_cost_nusd=3_000_000_000,
        by_service=(SpendLine("chat", 1_000_000_000, 3),),
        by_model=(SpendLine(MODEL, 1_000_000_000, 2), SpendLine(HTML, 1, 1)),
        budgets=(BudgetLine("fleet", 3_000_000_000, 10_000_000_000, "2026-12-06"),),
        alerts=(DigestAlert("critical", f"Spend spike on {MODEL} {TAG}", NOW),),
    )
    report = report_of()
    message = ReportMessage(
        key="week:2026-12-07",
        subject="[spendwatch REPORT] week",
        text="report",
        html=render_html(report),
        summary=render_summary(report),
    )
    a = alerts()
    return [
        Notification("r", "g1", NOW, alerts=a[:1]),
        Notification("r", "g2", NOW, alerts=a[1:]),
        Notification("r", "g3", NOW, alerts=a),
        Notification("r", "digest", NOW, kind="digest", digest=digest),
        Notification("r", "report", NOW, kind="report", report=message),
    ]


def report_of() -> Report:
    model = Line(MODEL, 2_000_000_000, 4, 1_000_000_000, 2)
    return Report(
        span=span_of("week", NOW, "UTC", complete=False),
        tag="team",
        total=Line("total", 3_000_000_000, 6),
        by_service=(Line("chat", 3_000_000_000, 6),),
        by_model=(model, Line(HTML, 1_000_000_000, 2)),
        by_tag=(Line(TAG, 1_000_000_000, 2),),
        movers=(Mover("model", model),),
        budgets=(),
        cache_hits=0,
        avoided_nusd=0,
        previous_cache_hits=0,
        previous_avoided_nusd=0,
        tiers=(),
        units=(),
        series=(),
        bucket="day",
    )


def slack_texts(payload: Any, kind: str = "mrkdwn") -> list[tuple[str, str]]:
    """Every text a Slack client renders, with its kind: the fallback (mrkdwn) and each
    block's text objects (``mrkdwn`` or ``plain_text``, which shows marks literally)."""
    found: list[tuple[str, str]] = []
    if isinstance(payload, dict):
        kind = payload.get("type", kind) if "text" in payload else kind
        for key, value in payload.items():
            if key == "text" and isinstance(value, str):
                found.append((kind, value))
            else:
                found += slack_texts(value, kind)
    elif isinstance(payload, (list, tuple)):
        for item in payload:
            found += slack_texts(item, kind)
    return found


def shown(text: str) -> str:
    """What a reader sees: entities decoded, look-alike marks read as the marks."""
    text = html.unescape(text)
    for lookalike, mark in LOOKALIKES.items():
        text = text.replace(lookalike, mark)
    return text


def test_slack_payloads_show_hostile_names_without_acting_on_them() -> None:
    for note in notifications():
        rendered = slack_notifier.render(note)
        texts = slack_texts({"text": rendered.text, "blocks": list(rendered.blocks)})
        assert {kind for kind, _ in texts} <= {"mrkdwn", "plain_text"}, note.kind
        everything = "\n".join(text for _, text in texts)
        # No mention, special command or link: Slack parses those only between < and >.
        assert "<" not in everything and ">" not in everything, (note.kind, everything)
        # Formatting marks from the data are not live in mrkdwn (the renderer's own *x* may
        # be; plain_text shows marks as they are).
        marked = "\n".join(text for kind, text in texts if kind == "mrkdwn")
        for raw in ("*bold*", "_it_", "~s~", "`code`", "*urgent*"):
            assert raw not in marked, (note.kind, raw)
        # ... and the names are still there for the reader, as written.
        seen = shown(everything)
        assert "<!channel> <@U123> <https://evil.example|click here>" in seen, note.kind
        if note.kind == "alerts" and note.group_key != "g1":
            assert TAG in seen and "<script>alert(1)</script>" in seen


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_email_payloads_show_hostile_names_as_text() -> None:
    for note in notifications():
        if note.kind == "report":
            assert note.report is not None
            html_parts = [note.report.html]
            subject = note.report.subject
        else:
            msg = build_message(note, "spendwatch@example.com", ("ops@example.com",))
            parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
            subject = str(parsed["Subject"])
            assert parsed["Bcc"] is None
            assert "\n" not in subject and "\r" not in subject
            body = parsed.get_body(("html",))
            assert body is not None
            html_parts = [body.get_content()]  # type: ignore[attr-defined]
            text_body = parsed.get_body(("plain",))
            assert text_body is not None
        for part in html_parts:
            tags = _Tags()
            tags.feed(part)
            assert tags.tags <= OWN_TAGS, (note.kind, tags.tags - OWN_TAGS)
            assert not [a for a in tags.attrs if a[0].startswith("on") or a[0] == "href"]
            assert all(v.startswith("cid:") for k, v in tags.attrs if k == "src" and v), note.kind
            text = "".join(tags.text)
            assert "<script>alert(1)</script>" in text and "<!channel>" in text, note.kind
        assert subject == " ".join(subject.split())


def test_one_line_subject_survives_header_injection() -> None:
    alert = Alert(
        alert_id="a",
        kind="spike",
        severity="warning",
        title=f"Spike {CR}",
        summary="",
        fired_at=NOW,
    )
    msg = build_message(Notification("r", "g", NOW, alerts=(alert,)), "a@example.com", ("b@x",))
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None
    assert str(parsed["Subject"]) == (
        "[spendwatch WARNING] Spike line1 Bcc: victim@example.com body"
    )
