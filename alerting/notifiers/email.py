"""Email notifier (aiosmtplib): text + HTML parts, ``Auto-Submitted: auto-generated``.

Transport security: ``tls=True`` is implicit TLS (port 465); ``starttls=True`` requires
STARTTLS; with neither, aiosmtplib upgrades opportunistically when the server offers
STARTTLS. ``Message-ID`` is derived from the notification id, so a message re-sent after an
ambiguous failure can be recognised as the same one by mail systems.

Errors: connection problems, timeouts and SMTP 4xx replies are transient; SMTP 5xx replies
(bad recipient, auth refused, message rejected) are permanent. When some but not all
recipients are refused, the message reached the others: that counts as delivered (a retry
would duplicate it for them) and the refusals are logged.
"""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING

import aiosmtplib

from alerting.digest import render_digest_email
from alerting.errors import PermanentDeliveryError, TransientDeliveryError
from alerting.notification import Notification
from alerting.render.charts import bar_chart
from alerting.render.email import render_email
from alerting.render.types import EmailContent

if TYPE_CHECKING:
    from alerting.config import EmailReceiver

log = logging.getLogger(__name__)


CHART_CID = "spendwatch-chart"


def render(message: Notification) -> tuple[EmailContent, bytes | None, str]:
    """The email's parts, and its chart (PNG) with the ``cid`` the HTML uses: a report's own
    chart; the digest's spend by service; none for alerts."""
    if message.kind == "report" and message.report is not None:
        r = message.report
        content = EmailContent(subject=r.subject, text=r.text, html=r.html)
        return content, r.chart_png or None, r.chart_cid
    if message.kind == "digest" and message.digest is not None:
        d = message.digest
        chart = None
        if d.by_service:
            chart = bar_chart(
                f"Spend by service, {d.day.isoformat()} ({d.timezone})",
                [(s.name, s.cost_nusd) for s in d.by_service],
            )
        return render_digest_email(d, chart_cid=CHART_CID if chart else None), chart, CHART_CID
    return render_email(message), None, ""


def build_message(message: Notification, from_addr: str, to: tuple[str, ...]) -> EmailMessage:
    """The MIME message for ``message`` (pure; blocking while a chart renders):
    multipart/alternative with text, then HTML; the HTML part becomes multipart/related
    with the chart as an inline PNG when there is one."""
    content, chart, cid = render(message)
    msg = EmailMessage()
    msg["From"] = from_addr
    msg["To"] = ", ".join(to)
    msg["Subject"] = content.subject
    msg["Date"] = format_datetime(message.created_at)
    msg["Message-ID"] = f"<{message.notification_id}@spendwatch>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, no vacation mails
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Spendwatch-Notification-Id"] = message.notification_id
    msg.set_content(content.text)
    msg.add_alternative(content.html, subtype="html")
    if chart:
        html_part = msg.get_payload()[1]  # type: ignore[index]
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(
            chart, maintype="image", subtype="png", cid=f"<{cid}>", filename="chart.png"
        )
    return msg


class EmailNotifier:
    def __init__(
        self,
        name: str,
        *,
        to: tuple[str, ...],
        from_addr: str,
        smtp_host: str,
        smtp_port: int,
        tls: bool = False,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        validate_certs: bool = True,
    ) -> None:
        self.name = name
        self.to = to
        self.from_addr = from_addr
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.tls = tls
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self.validate_certs = validate_certs

    def __repr__(self) -> str:
        return f"EmailNotifier(name={self.name!r}, host={self.smtp_host}:{self.smtp_port})"

    @classmethod
    def from_receiver(cls, r: EmailReceiver) -> EmailNotifier:
        return cls(
            r.name,
            to=r.to,
            from_addr=r.from_addr,
            smtp_host=r.smtp_host,
            smtp_port=r.smtp_port,
            tls=r.tls,
            starttls=r.starttls,
            username=r.username,
            password=r.password.reveal() if r.password else None,
            timeout_s=r.timeout_s,
            validate_certs=r.validate_certs,
        )

    async def send(self, message: Notification) -> None:
        # A chart renders in a thread: matplotlib takes tens of milliseconds.
        msg = await asyncio.to_thread(build_message, message, self.from_addr, self.to)
        try:
            refused, _ = await aiosmtplib.send(
                msg,
                hostname=self.smtp_host,
                port=self.smtp_port,
                username=self.username,
                password=self._password,
                use_tls=self.tls,
                start_tls=True if self.starttls else None,
                timeout=self.timeout_s,
                validate_certs=self.validate_certs,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            text = "all recipients refused: " + "; ".join(
                f"{e.code} {e.message}" for e in exc.recipients
            )
            if any(400 <= c < 500 for c in codes):
                raise TransientDeliveryError(self.name, text) from None
            raise PermanentDeliveryError(self.name, text) from None
        except aiosmtplib.SMTPResponseException as exc:
            text = f"SMTP {exc.code} {exc.message}"
            if 400 <= exc.code < 500:
                raise TransientDeliveryError(self.name, text) from None
            raise PermanentDeliveryError(self.name, text) from None
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise TransientDeliveryError(self.name, f"{type(exc).__name__}: {exc}") from None
        if refused:
            log.warning(
                "email %s: some recipients refused: %s",
                self.name,
                {k: f"{v.code} {v.message}" for k, v in refused.items()},
            )
