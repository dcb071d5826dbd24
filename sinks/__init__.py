"""ClickHouse: client factory, schema migrations and the batching writer.

Modules (one concept each):

* ``settings``   - ``ClickHouseSettings.from_config`` (the ``[clickhouse]`` section; DSN
  precedence: config > ``$SPENDWATCH_CLICKHOUSE_DSN`` > ``chdb:///.spendwatch/chdb``).
* ``client``     - ``make_client(settings, read_only=False)`` for ``chdb://`` and ``http(s)://``.
* ``migrate``    - ``migrate(client, settings)``: the DDL in ``schemas/clickhouse/*.sql``.
* ``rows``       - row converters (``usage_row``, ``deadletter_row``, ``alert_row``,
  ``alert_delivery_row``) and the table specs (``USAGE_EVENTS``, ``DEADLETTER``, ...).
* ``batching``   - ``BatchingSink``: ``open / add / flush / close``; ``DeadLetter``.
* ``clickhouse`` - ``ClickHouseSink``: column-oriented inserts, retries, dead letters, dedupe.
* ``memory``     - ``MemorySink`` for tests and demos.
* ``errors``     - sink errors and ``classify`` (transient / data / fatal).
* ``readonly``, ``query``, ``http_endpoint``, ``sql``, ``cli`` - ad-hoc read-only SQL: the
  rule, the runner, the worker's ``POST /sql`` endpoint and ``spendwatch sql``.

Exact reads: ``usage_events``, ``alerts``, ``deadletter`` and ``alert_deliveries`` are
ReplacingMergeTree tables, so a replayed row collapses at merge time; until then read them
with ``FINAL`` (the ``final = 1`` setting, applied by ``spendwatch sql`` and the endpoint) or
through the ``usage_events_dedup`` view.
"""
