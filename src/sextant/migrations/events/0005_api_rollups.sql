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

-- Days built before this table existed have no API rows: every hour counts as written now,
-- so those days are read raw until the builder has rebuilt them with their API rows.
INSERT INTO rollup_writes_data (project_id, hour, written_at)
SELECT project_id, hour, now64(3, 'UTC') FROM rollup_writes GROUP BY project_id, hour;
