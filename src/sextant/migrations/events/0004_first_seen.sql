-- When each distinct id was first seen, per event name and bot flag: a retention cohort is
-- the first occurrence of an event over a person's whole history, and this table answers
-- that from one row per (id, event) instead of every event ever stored. Kept by the view on
-- every insert; governance deletes and recomputes a project's rows when it deletes events.
CREATE TABLE IF NOT EXISTS first_seen_data
(
    project_id     UUID,
    event          LowCardinality(String),
    is_bot         UInt8,
    distinct_hash  UInt64,
    first_ts       SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    -- 0 for rows of the view; rows recomputed after a deletion carry its time, so a merge
    -- never folds a recomputed minimum into an old one that is about to be deleted.
    generation     UInt32 DEFAULT 0
)
ENGINE = AggregatingMergeTree
ORDER BY (project_id, is_bot, event, distinct_hash, generation);

-- Written through a Buffer, like rollup_writes (see 0003).
CREATE TABLE IF NOT EXISTS first_seen AS first_seen_data
ENGINE = Buffer(currentDatabase(), 'first_seen_data', 1, 1, 5, 10000, 1000000, 10000000, 100000000);

CREATE MATERIALIZED VIEW IF NOT EXISTS first_seen_mv TO first_seen AS
SELECT project_id, event, is_bot, cityHash64(distinct_id) AS distinct_hash, min(timestamp) AS first_ts
FROM events
GROUP BY project_id, event, is_bot, distinct_hash;

INSERT INTO first_seen_data (project_id, event, is_bot, distinct_hash, first_ts)
SELECT project_id, event, is_bot, cityHash64(distinct_id) AS distinct_hash, min(timestamp) AS first_ts
FROM events
GROUP BY project_id, event, is_bot, distinct_hash;
