-- Daily rollups (see README "Rollups"): per project, time zone and local day, the number
-- of events and a HyperLogLog sketch of the persons behind them, for every value of the
-- common dimensions. Reports read them for the whole days that are clean (no write since
-- the day was built) and read raw events for the rest, so an answer never goes stale.
-- Rows of one build share a version; a report reads only the latest version of a day.
CREATE TABLE IF NOT EXISTS rollup_daily
(
    project_id  UUID,
    tz          LowCardinality(String),
    day         Date,
    version     UInt64,
    is_bot      UInt8,
    dim         LowCardinality(String),
    value       String,
    events      UInt64,
    persons     AggregateFunction(uniqCombined64(13), UInt64)
)
ENGINE = MergeTree
ORDER BY (project_id, tz, day, dim, value)
SETTINGS index_granularity = 1024;

-- One row per build of a local day: the version its rows carry and the moment up to which
-- it saw every write (rows written later make the day dirty again).
CREATE TABLE IF NOT EXISTS rollup_builds
(
    project_id  UUID,
    tz          LowCardinality(String),
    day         Date,
    version     UInt64,
    built_at    DateTime64(3, 'UTC')
)
ENGINE = {replacing_engine}(built_at)
ORDER BY (project_id, tz, day);

-- When each UTC hour of a project last changed: every insert into `events` (through the
-- materialized view below), person links that regroup a day's persons, and deletions.
CREATE TABLE IF NOT EXISTS rollup_writes_data
(
    project_id  UUID,
    hour        DateTime('UTC'),
    written_at  DateTime64(3, 'UTC')
)
ENGINE = {replacing_engine}(written_at)
ORDER BY (project_id, hour);

-- The view writes through a Buffer (read together with the table; flushed every few
-- seconds): a view writing a part of its own on every insert cost ~5 ms of CPU per group
-- commit. What a crash loses of the buffer is re-derived at start-up (analytics/rollups.py).
CREATE TABLE IF NOT EXISTS rollup_writes AS rollup_writes_data
ENGINE = Buffer(currentDatabase(), 'rollup_writes_data', 1, 1, 5, 10000, 1000000, 10000000, 100000000);

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_writes_mv TO rollup_writes AS
SELECT project_id, toStartOfHour(timestamp) AS hour, now64(3, 'UTC') AS written_at
FROM events
GROUP BY project_id, hour;

-- Events stored before this migration count as written now.
INSERT INTO rollup_writes_data
SELECT project_id, toStartOfHour(timestamp) AS hour, now64(3, 'UTC') AS written_at
FROM events
GROUP BY project_id, hour;

-- When each person link was stored (by the store's clock, like rollup_writes): new links are
-- found by this, not by the client-supplied time. Links stored before now count as old.
ALTER TABLE person_aliases ADD COLUMN IF NOT EXISTS inserted_at DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC');
ALTER TABLE person_aliases MATERIALIZE COLUMN inserted_at;
ALTER TABLE person_aliases MODIFY COLUMN inserted_at DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC');

-- Up to when each project's person links have been turned into rollup_writes marks.
CREATE TABLE IF NOT EXISTS rollup_alias_marks
(
    project_id  UUID,
    marked_to   DateTime64(3, 'UTC')
)
ENGINE = {replacing_engine}(marked_to)
ORDER BY project_id;
