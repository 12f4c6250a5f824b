-- Daily API rollups (see README "Rollups"): per project, time zone, local day and endpoint
-- (method + route), the request, error and 5xx counts, the latency sum and maximum, and every
-- latency of the day sorted in one array, so percentiles from rollup days stay exact
-- (quantilesExactInclusiveArray over the arrays = quantilesExactInclusive over the events).
-- Built with rollup_daily, under the same version and rollup_builds row.
CREATE TABLE IF NOT EXISTS rollup_api_daily
(
    project_id     UUID,
    tz             LowCardinality(String),
    day            Date,
    version        UInt64,
    is_bot         UInt8,
    method         LowCardinality(String),
    route          LowCardinality(String),
    requests       UInt64,
    errors         UInt64,
    server_errors  UInt64,
    duration_sum   Float64,
    duration_max   Float64,
    durations      Array(Float64)
)
ENGINE = MergeTree
ORDER BY (project_id, tz, day, method, route)
SETTINGS index_granularity = 256;

-- The persons active on each local day (one row per person, by the person mapping of the
-- build): retention reads who came back on a clean day from here instead of every event.
CREATE TABLE IF NOT EXISTS rollup_person_days
(
    project_id  UUID,
    tz          LowCardinality(String),
    day         Date,
    version     UInt64,
    is_bot      UInt8,
    person      UInt64
)
ENGINE = MergeTree
ORDER BY (project_id, tz, day, is_bot, person);

-- Whole local weeks (Monday to Sunday) of rollup_daily merged into one row per value: a
-- 30-day summary merges about 5 sketches per value instead of 30. `key` names the seven day
-- builds a week was merged from: a report reads a week only while all seven days are clean
-- with exactly those builds (else it reads the days).
CREATE TABLE IF NOT EXISTS rollup_weekly
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
ORDER BY (project_id, tz, week, dim, value)
SETTINGS index_granularity = 1024;

-- The same rows as rollup_daily per UTC hour of each local day, built in the same pass (the
-- day's rows are merged from its hours). A range that starts or ends inside a clean day
-- reads that day's whole hours from here instead of raw events.
CREATE TABLE IF NOT EXISTS rollup_hourly
(
    project_id  UUID,
    tz          LowCardinality(String),
    day         Date,
    version     UInt64,
    hour        DateTime('UTC'),
    is_bot      UInt8,
    dim         LowCardinality(String),
    value       String,
    events      UInt64,
    persons     AggregateFunction(uniqCombined64(13), UInt64)
)
ENGINE = MergeTree
ORDER BY (project_id, tz, day, hour, dim, value)
SETTINGS index_granularity = 1024;

-- Days built before these tables existed have no rows in them: every hour counts as written now,
-- so those days are read raw until the builder has rebuilt them.
INSERT INTO rollup_writes_data (project_id, hour, written_at)
SELECT project_id, hour, now64(3, 'UTC') FROM rollup_writes GROUP BY project_id, hour;
