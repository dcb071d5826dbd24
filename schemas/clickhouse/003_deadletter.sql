-- Everything refused on the way in, with its reason and the original bytes, so nothing is
-- lost silently. Sources: events the validator rejected (spendwatch.deadletter.v1) and rows
-- ClickHouse refused (reason_code 'insert_refused'). Replay-safe: a replayed message has the
-- same topic/partition/offset/reason/bytes and collapses to one row.
CREATE TABLE IF NOT EXISTS ${database}.deadletter
(
    received_at DateTime64(3, 'UTC'),
    topic       LowCardinality(String),
    partition   Int32,
    offset      Int64,
    reason_code LowCardinality(String),
    reason      String,
    original    String,
    key         Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, offset, reason_code, cityHash64(original))
TTL toDateTime(received_at) + toIntervalDay(${ttl_days});
