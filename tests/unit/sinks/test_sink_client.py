"""make_client against a ClickHouse server that is not there: transient, password not shown."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from sinks.client import make_client
from sinks.errors import TRANSIENT, classify
from sinks.settings import ClickHouseSettings
from streams.broker import free_port


def test_unreachable_server_is_a_transient_error_without_the_password() -> None:
    settings = ClickHouseSettings(
        dsn=f"http://alice:hunter2@127.0.0.1:{free_port()}", connect_timeout_s=1
    )
    with pytest.raises(OperationalError) as info:
        make_client(settings)
    assert classify(info.value) == TRANSIENT
    assert "hunter2" not in str(info.value)
