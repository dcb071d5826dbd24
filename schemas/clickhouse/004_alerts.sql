-- Alerts as emitted on spendwatch.alerts.v1 (firing and resolved are two rows with the same
-- alert_id), and every delivery attempt the notifiers made. Both replay-safe: alert ids are
-- deterministic, so a re-emitted alert collapses onto its earlier row.
CREATE TABLE IF NOT EXISTS ${database}.alerts
(
    alert_id       String,
    kind           LowCardinality(String),
    severity       LowCardinality(String),
    status         LowCardinality(String),
    title          String,
    summary        String,
    fired_at       DateTime64(3, 'UTC'),
    labels         Map(String, String),
    figures        Map(String, String),
    contributors   String,  -- JSON array of {dimension, name, cost_nusd, share}
    schema_version UInt8,
    recorded_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(fired_at)
ORDER BY (alert_id, status)
TTL toDateTime(fired_at) + toIntervalDay(${ttl_days});

CREATE TABLE IF NOT EXISTS ${database}.alert_deliveries
(
    alert_id String,
    status   LowCardinality(String) DEFAULT 'firing',  -- which notice: firing or resolved
    receiver LowCardinality(String),
    attempt  UInt16,
    outcome  LowCardinality(String),  -- delivered | failed | suppressed ...
    error    String,
    at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(at)
ORDER BY (alert_id, status, receiver, attempt)
TTL toDateTime(at) + toIntervalDay(${ttl_days});
