"""Contracts between the SDK, the stream workers, ClickHouse and the notifiers."""
