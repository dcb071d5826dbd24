"""Shared fixtures for tests that run the real worker: a Tansu broker with the spendwatch
topics, and a loopback HTTP server speaking the Slack API in its own thread (the worker is a
separate process, so the server cannot share the test's event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from streams import topics
from streams.broker import TansuBroker, create_topics
from tests.support.slack_server import SlackServer


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    """A Tansu broker on 127.0.0.1 with every spendwatch topic (1 partition each)."""
    with TansuBroker() as running:
        asyncio.run(create_topics(running.bootstrap_servers, topics.ALL, 1))
        yield running


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """A loopback Slack API (webhooks and chat.postMessage) served from a thread."""
    with SlackServer().running_in_thread() as server:
        yield server
