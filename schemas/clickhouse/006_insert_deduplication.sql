-- The hot path inserts each block with a deduplication token derived from its source
-- positions and retries a failed insert with the same block and token. Non-replicated
-- MergeTree tables remember the tokens of their last blocks only when this window is set:
-- then a lost reply is not stored twice, and a rollup view whose insert failed after
-- usage_events took the block gets the block on the retry (each table deduplicates on its
-- own: deduplicate_blocks_in_dependent_materialized_views).
ALTER TABLE ${database}.usage_events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE ${database}.spend_by_minute MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE ${database}.spend_by_day MODIFY SETTING non_replicated_deduplication_window = 10000;
