-- Spend rollups per service / provider / model, kept by materialized views on insert.
--
-- Replay caveat: a materialized view sees every inserted block, including a replayed event
-- that usage_events later collapses. The sink therefore never inserts an event_id twice:
-- it drops repeats within and across its recent batches, and before each insert attempt it
-- skips the event_ids already present in usage_events (this covers a worker that crashed
-- after writing a batch but before committing its offsets). Two workers writing the same
-- event at the same moment (a rebalance race) can still count it twice here; usage_events
-- read with FINAL stays exact, and sinks.migrate.rebuild_rollups() recomputes the rollups
-- from it.
--
-- SummingMergeTree adds rows with the same key at merge time: always sum() the measures.
CREATE TABLE IF NOT EXISTS ${database}.spend_by_minute
(
    minute             DateTime64(0, 'UTC'),
    service            LowCardinality(String),
    provider           LowCardinality(String),
    model              LowCardinality(String),
    events             UInt64,
    errors             UInt64,
    cache_hits         UInt64,
    unpriced           UInt64,
    input_tokens       UInt64,
    output_tokens      UInt64,
    cache_read_tokens  UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens   UInt64,
    cost_nusd          Int64,
    avoided_cost_nusd  Int64,
    cost_usd           Decimal(38, 9) ALIAS toDecimal128(cost_nusd, 9) / 1000000000,
    avoided_cost_usd   Decimal(38, 9) ALIAS toDecimal128(avoided_cost_nusd, 9) / 1000000000
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (service, minute, provider, model)
TTL toDateTime(minute) + toIntervalDay(${ttl_days});

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.spend_by_minute_mv
TO ${database}.spend_by_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    service,
    provider,
    model,
    count() AS events,
    countIf(status = 'error') AS errors,
    countIf(cache_hit) AS cache_hits,
    countIf(cost_source = 'unpriced') AS unpriced,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_nusd) AS cost_nusd,
    sum(avoided_cost_nusd) AS avoided_cost_nusd
FROM ${database}.usage_events
GROUP BY minute, service, provider, model;

CREATE TABLE IF NOT EXISTS ${database}.spend_by_day
(
    day                Date,
    service            LowCardinality(String),
    provider           LowCardinality(String),
    model              LowCardinality(String),
    events             UInt64,
    errors             UInt64,
    cache_hits         UInt64,
    unpriced           UInt64,
    input_tokens       UInt64,
    output_tokens      UInt64,
    cache_read_tokens  UInt64,
    cache_write_tokens UInt64,
    reasoning_tokens   UInt64,
    cost_nusd          Int64,
    avoided_cost_nusd  Int64,
    cost_usd           Decimal(38, 9) ALIAS toDecimal128(cost_nusd, 9) / 1000000000,
    avoided_cost_usd   Decimal(38, 9) ALIAS toDecimal128(avoided_cost_nusd, 9) / 1000000000
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (service, day, provider, model)
TTL day + toIntervalDay(${ttl_days});

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.spend_by_day_mv
TO ${database}.spend_by_day AS
SELECT
    toDate(ts, 'UTC') AS day,
    service,
    provider,
    model,
    count() AS events,
    countIf(status = 'error') AS errors,
    countIf(cache_hit) AS cache_hits,
    countIf(cost_source = 'unpriced') AS unpriced,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_nusd) AS cost_nusd,
    sum(avoided_cost_nusd) AS avoided_cost_nusd
FROM ${database}.usage_events
GROUP BY day, service, provider, model;
