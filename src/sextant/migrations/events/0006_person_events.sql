-- When each person did each event on each local day (one row per event, day and linked id,
-- by the person mapping of the build; `times` are the events' milliseconds since the epoch,
-- sorted). Funnels read their steps from here: who did step 1 at all, and the whole timeline
-- of the few who did step 2, instead of grouping millions of raw step-1 events by person.
CREATE TABLE IF NOT EXISTS rollup_person_events
(
    project_id  UUID,
    tz          LowCardinality(String),
    event       LowCardinality(String),
    day         Date,
    version     UInt64,
    is_bot      UInt8,
    person      UInt64,
    times       Array(UInt64) CODEC(Delta, LZ4)
)
ENGINE = MergeTree
ORDER BY (project_id, tz, event, day, person);

-- Days built before this table existed have no rows in it: every hour counts as written now,
-- so those days are read raw until the builder has rebuilt them.
INSERT INTO rollup_writes_data (project_id, hour, written_at)
SELECT project_id, hour, now64(3, 'UTC') FROM rollup_writes GROUP BY project_id, hour;
