"""Slack notifier: incoming webhook (``AsyncWebhookClient``) or bot token
(``AsyncWebClient.chat_postMessage``), Block Kit with a text fallback.

Retries: both slack_sdk clients are built with ``retry_handlers=[]``. The dispatcher owns
the retry policy (exponential backoff, ``Retry-After``, dead letters, a persistent delivery
log); an in-client retry would sleep inside ``send`` and double the attempts the policy
counts. 429 answers surface as ``TransientDeliveryError(retry_after_s=...)``.

Pacing: Slack allows about one message per second per channel / webhook, so every
notifier exposes ``pace_key`` (one per webhook URL or per token+channel) and
``min_interval_s = 1.0``, which the dispatcher honours.
"""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from alerting.digest import render_digest_slack
from alerting.errors import PermanentDeliveryError, TransientDeliveryError
from alerting.notification import Notification
from alerting.notifiers.http import error_for_status, retry_after_s
from alerting.render.slack import SlackMessage, render_notification

# chat.postMessage "ok": false errors a retry can fix; every other error is permanent
# (invalid_auth, channel_not_found, not_in_channel, invalid_blocks ...).
TRANSIENT_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def render(message: Notification) -> SlackMessage:
    """The Slack message for a notification (alerts, digest, or a report's short summary)."""
    if message.kind == "report" and message.report is not None:
        summary = message.report.summary
        return SlackMessage(
            text=summary.split("\n", 1)[0].replace("*", ""),
            blocks=({"type": "section", "text": {"type": "mrkdwn", "text": summary[:3000]}},),
        )
    if message.kind == "digest" and message.digest is not None:
        return render_digest_slack(message.digest)
    return render_notification(message)


class SlackNotifier:
    """Posts to one Slack destination.

    Give ``webhook_url`` (incoming webhook) or ``bot_token`` + ``channel`` (``base_url``
    overrides ``https://slack.com/api/``, for tests on loopback). Secrets are held only in
    the clients and never appear in ``repr`` or error messages.
    """

    def __init__(
        self,
        name: str,
        *,
        webhook_url: str | None = None,
        bot_token: str | None = None,
        channel: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        min_interval_s: float = 1.0,
    ) -> None:
        if (webhook_url is None) == (bot_token is None):
            raise ValueError("give exactly one of webhook_url or bot_token")
        if bot_token is not None and not channel:
            raise ValueError("a bot token needs a channel")
        self.name = name
        self.min_interval_s = min_interval_s
        self.timeout_s = timeout_s
        self._webhook_url = webhook_url
        self._bot_token = bot_token
        self.channel = channel
        self.base_url = base_url
        if webhook_url is not None:
            self.pace_key = f"slack:webhook:{_digest(webhook_url)}"
        else:
            self.pace_key = f"slack:chat:{_digest(bot_token or '')}:{channel}"
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        mode = "webhook" if self._webhook_url else f"bot channel={self.channel}"
        return f"SlackNotifier(name={self.name!r}, {mode})"

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session must be made inside the running loop.
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def send(self, message: Notification) -> None:
        rendered = render(message)
        blocks = list(rendered.blocks)
        try:
            if self._webhook_url is not None:
                await self._send_webhook(self._webhook_url, rendered.text, blocks)
            else:
                await self._send_chat(rendered.text, blocks)
        except (TransientDeliveryError, PermanentDeliveryError):
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransientDeliveryError(self.name, f"{type(exc).__name__}: {exc}") from None

    async def _send_webhook(self, url: str, text: str, blocks: list[dict[str, Any]]) -> None:
        client = AsyncWebhookClient(
            url, timeout=int(self.timeout_s) or 1, session=self._get_session(), retry_handlers=[]
        )
        resp = await client.send(text=text, blocks=blocks)
        error = error_for_status(self.name, resp.status_code, resp.body, resp.headers)
        if error is not None:
            raise error

    async def _send_chat(self, text: str, blocks: list[dict[str, Any]]) -> None:
        kwargs: dict[str, Any] = {}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        client = AsyncWebClient(
            token=self._bot_token,
            timeout=int(self.timeout_s) or 1,
            session=self._get_session(),
            retry_handlers=[],
            **kwargs,
        )
        try:
            await client.chat_postMessage(channel=self.channel or "", text=text, blocks=blocks)
        except SlackApiError as exc:
            resp = exc.response
            # resp is an AsyncSlackResponse, or the raw aiohttp response when the body
            # was not JSON (then it has .status rather than .status_code).
            status = int(getattr(resp, "status_code", None) or getattr(resp, "status", 0) or 0)
            data = getattr(resp, "data", None)
            code = data.get("error", "") if isinstance(data, dict) else ""
            headers = dict(getattr(resp, "headers", {}) or {})
            if status == 429 or code == "ratelimited":
                raise TransientDeliveryError(
                    self.name, "rate limited (429)", retry_after_s=retry_after_s(headers)
                ) from None
            if status >= 500 or code in TRANSIENT_API_ERRORS:
                raise TransientDeliveryError(
                    self.name, f"chat.postMessage HTTP {status} {code}".strip()
                ) from None
            raise PermanentDeliveryError(
                self.name, f"chat.postMessage HTTP {status} {code or 'failed'}"
            ) from None

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
