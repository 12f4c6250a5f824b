-- A 64-bit hash of the distinct id, computed by the store at insert (ingestion writes
-- named columns and never sends it). Unique counts and per-person grouping read these
-- 8 bytes instead of hashing the distinct id string of every row at query time.
-- Parts written before this migration compute it on read until MATERIALIZE rewrites them.
ALTER TABLE events ADD COLUMN IF NOT EXISTS distinct_hash UInt64 MATERIALIZED cityHash64(distinct_id);
ALTER TABLE events MATERIALIZE COLUMN distinct_hash;
