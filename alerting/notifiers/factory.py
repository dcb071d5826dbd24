"""Build notifiers from validated receiver settings (secrets revealed only here)."""

from __future__ import annotations

import sys

from alerting.config import (
    AlertingSettings,
    ConsoleReceiver,
    EmailReceiver,
    Receiver,
    SlackReceiver,
    WebhookReceiver,
)
from alerting.notifiers.base import Notifier
from alerting.notifiers.console import ConsoleNotifier
from alerting.notifiers.slack import SlackNotifier


def build_notifier(receiver: Receiver) -> Notifier:
    if isinstance(receiver, ConsoleReceiver):
        stream = sys.stderr if receiver.stream == "stderr" else None
        return ConsoleNotifier(receiver.name, stream)
    if isinstance(receiver, SlackReceiver):
        return SlackNotifier(
            receiver.name,
            webhook_url=receiver.webhook_url.reveal() if receiver.webhook_url else None,
            bot_token=receiver.bot_token.reveal() if receiver.bot_token else None,
            channel=receiver.channel,
            base_url=receiver.base_url,
            timeout_s=receiver.timeout_s,
            min_interval_s=receiver.min_interval_s,
        )
    if isinstance(receiver, EmailReceiver):
        from alerting.notifiers.email import EmailNotifier

        return EmailNotifier.from_receiver(receiver)
    if isinstance(receiver, WebhookReceiver):
        from alerting.notifiers.webhook import WebhookNotifier

        return WebhookNotifier(
            receiver.name,
            url=receiver.url.reveal(),
            headers={k: v.reveal() for k, v in receiver.headers.items()},
            timeout_s=receiver.timeout_s,
        )
    raise TypeError(f"unknown receiver type {type(receiver).__name__}")


def build_notifiers(settings: AlertingSettings) -> dict[str, Notifier]:
    """One notifier per configured receiver, keyed by receiver name."""
    return {r.name: build_notifier(r) for r in settings.receivers}
