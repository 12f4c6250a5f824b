-- Rollups are derived data: this migration drops and recreates them with a faster layout and
-- the builder rebuilds every day from the events (no build left: every day is due).
--
-- 1. rollup_daily / rollup_hourly / rollup_weekly are sorted by dimension before day: a
--    report reads one or a few dimensions, and their rows of consecutive days now sit together,
--    so it deserializes only the sketches it needs (a 61-day active-users report read 12,000
--    sketches of other dimensions to get 61). Smaller granules do the same within a day.
-- 2. rollup_person_days carries each person's first day (over every built day), so retention
--    cohorts are read from the rows of the range alone instead of every first occurrence ever
--    stored, and their first and last event of the day, so the day a range ends inside is
--    read from it too.
-- 3. rollup_person_events holds when each person did each event on each day, for funnels.
-- 4. rollup_builds records each built day's first and last event.
DROP TABLE IF EXISTS rollup_daily;
CREATE TABLE rollup_daily
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
ORDER BY (project_id, tz, dim, day, value)
SETTINGS index_granularity = 32;

DROP TABLE IF EXISTS rollup_hourly;
CREATE TABLE rollup_hourly
(
    project_id  UUID,
    tz          LowCardinality(String),
    day         Date,
    version     UInt64,
    hour        DateTime('UTC'),
    -- 1: the hour; 6: the six hours of the day from this one (the day's hours counted from
    -- its first, in blocks of six), so a range starting or ending inside a day merges a few
    -- blocks and single hours instead of up to 23 hours.
    span        UInt8 DEFAULT 1,
    is_bot      UInt8,
    dim         LowCardinality(String),
    value       String,
    events      UInt64,
    persons     AggregateFunction(uniqCombined64(13), UInt64)
)
ENGINE = MergeTree
ORDER BY (project_id, tz, dim, day, span, hour, value)
SETTINGS index_granularity = 32;

DROP TABLE IF EXISTS rollup_weekly;
CREATE TABLE rollup_weekly
(
    project_id  UUID,
    tz          LowCardinality(String),
    week        Date,
    key         UInt64,
    is_bot      UInt8,
    dim         LowCardinality(String),
    value       String,
    events      UInt64,
    persons     AggregateFunction(uniqCombined64(13), UInt64)
)
ENGINE = MergeTree
ORDER BY (project_id, tz, dim, week, value)
SETTINGS index_granularity = 32;

DROP TABLE IF EXISTS rollup_person_days;
CREATE TABLE rollup_person_days
(
    project_id  UUID,
    tz          LowCardinality(String),
    day         Date,
    version     UInt64,
    is_bot      UInt8,
    person      UInt64,
    -- The person's first day (same bot flag) over every built day.
    first_day   Date,
    -- The person's first and last event of the day: a range that starts or ends inside a
    -- built day can still read its persons here (active before the end, or after the start).
    first_ts    DateTime64(3, 'UTC'),
    last_ts     DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (project_id, tz, day, is_bot, person);

-- When each person did each event on each local day (times in ms, sorted): funnels read
-- the rows of their steps instead of every event, persons already mapped.
DROP TABLE IF EXISTS rollup_person_events;
CREATE TABLE rollup_person_events
(
    project_id  UUID,
    tz          LowCardinality(String),
    day         Date,
    version     UInt64,
    is_bot      UInt8,
    event       LowCardinality(String),
    person      UInt64,
    times       Array(UInt64)
)
ENGINE = MergeTree
ORDER BY (project_id, tz, event, day, person)
SETTINGS index_granularity = 1024;

-- A build's person-day rows wait here until every one has its first day.
DROP TABLE IF EXISTS rollup_person_stage;
CREATE TABLE rollup_person_stage
(
    project_id  UUID,
    tz          LowCardinality(String),
    version     UInt64,
    day         Date,
    is_bot      UInt8,
    person      UInt64,
    first_ts    DateTime64(3, 'UTC'),
    last_ts     DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (project_id, tz, version, is_bot, person, day);

-- The first and last event of each built day: a range that starts or ends inside a day that
-- has no events outside it reads the whole day's rollup.
ALTER TABLE rollup_builds ADD COLUMN IF NOT EXISTS first_ts DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC');
ALTER TABLE rollup_builds ADD COLUMN IF NOT EXISTS last_ts DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC');

TRUNCATE TABLE IF EXISTS rollup_api_daily;
TRUNCATE TABLE IF EXISTS rollup_builds
