-- Where each usage row came from: the usage topic's epoch (streams/epoch.py), partition and
-- offset. Budget ledgers count spend by these positions, so that a ledger seeded from this
-- table and then fed budget deltas counts every stored event exactly once; the hot path also
-- finds the rows a crash left unacknowledged by them (docs/exactly-once.md).
ALTER TABLE ${database}.usage_events
    ADD COLUMN IF NOT EXISTS kafka_epoch LowCardinality(String) DEFAULT '' AFTER ingested_at,
    ADD COLUMN IF NOT EXISTS kafka_partition Int32 DEFAULT -1 AFTER kafka_epoch,
    ADD COLUMN IF NOT EXISTS kafka_offset Int64 DEFAULT -1 AFTER kafka_partition;

-- The hot path reads recent rows by time (its dedupe window) and the rows past a committed
-- offset (after a crash): skip indexes keep both reads off the cold parts.
ALTER TABLE ${database}.usage_events
    ADD INDEX IF NOT EXISTS idx_ts ts TYPE minmax GRANULARITY 1,
    ADD INDEX IF NOT EXISTS idx_kafka_offset kafka_offset TYPE minmax GRANULARITY 1;
