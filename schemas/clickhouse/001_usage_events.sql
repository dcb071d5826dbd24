-- Every priced usage event (spendwatch.priced.v1), one row per event_id.
--
-- Replay safety: the sorting key ends with event_id and a replayed event carries the same
-- service and ts, so ReplacingMergeTree collapses it to one row (the latest ingested_at wins).
-- Until the background merge runs, duplicates are still on disk: exact queries read the table
-- with FINAL - `spendwatch sql` and the worker's SQL endpoint apply the `final = 1` setting to
-- every query, and other clients can read the view usage_events_dedup.
--
-- Money: cost_nusd / avoided_cost_nusd are integer nano-USD (the source of truth, summed
-- by the rollups); cost_usd / avoided_cost_usd are exact Decimal USD computed from them.
-- Absent optional strings are stored as '' (the event schema forbids empty values).
CREATE TABLE IF NOT EXISTS ${database}.usage_events
(
    event_id           UUID,
    ts                 DateTime64(6, 'UTC'),
    schema_version     UInt8,
    service            LowCardinality(String),
    operation          LowCardinality(String),
    status             LowCardinality(String),
    provider           LowCardinality(String),
    model              LowCardinality(String),
    response_model     LowCardinality(String),
    input_tokens       UInt32,
    output_tokens      UInt32,
    cache_read_tokens  UInt32,
    cache_write_tokens UInt32,
    reasoning_tokens   UInt32,
    unit               LowCardinality(String),
    quantity           Nullable(Decimal(21, 9)),
    supplied_cost_usd  Nullable(Decimal(18, 9)),
    latency_ms         Nullable(Float64),
    error_type         LowCardinality(String),
    cache_hit          Bool,
    partial            Bool,
    request_id         String,
    environment        LowCardinality(String),
    tags               Map(String, String),
    cost_nusd          Int64,
    cost_usd           Decimal(18, 9) DEFAULT CAST(toDecimal128(cost_nusd, 9) / 1000000000 AS Decimal(18, 9)),
    avoided_cost_nusd  Int64,
    avoided_cost_usd   Decimal(18, 9) DEFAULT CAST(toDecimal128(avoided_cost_nusd, 9) / 1000000000 AS Decimal(18, 9)),
    cost_source        LowCardinality(String),
    unpriced_reason    String,
    ingested_at        DateTime64(6, 'UTC'),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4,
    CONSTRAINT money_not_negative CHECK cost_nusd >= 0 AND avoided_cost_nusd >= 0,
    CONSTRAINT known_cost_source CHECK cost_source IN ('supplied', 'catalog', 'price_table', 'unpriced'),
    CONSTRAINT known_status CHECK status IN ('ok', 'error')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (service, ts, event_id)
TTL toDateTime(ts) + toIntervalDay(${ttl_days})
SETTINGS ttl_only_drop_parts = 1;

-- The deduplicated rows for clients that cannot set `final = 1`.
CREATE VIEW IF NOT EXISTS ${database}.usage_events_dedup AS
SELECT * FROM ${database}.usage_events FINAL;
