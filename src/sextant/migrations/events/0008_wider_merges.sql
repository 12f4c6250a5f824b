-- Merges combine up to 32 parts of a similar size instead of 8 (see README "Ingestion").
-- Merges cost about twice the insert per row on this wide table, and a row is rewritten
-- once per level on its way from a group-commit block to a large part: with 32 at a time
-- there are fewer levels. benchmarks/store_blocks.py, blocks of 8,000 rows, 1.6 M rows,
-- run alternately on one machine: 11.6-11.8 us of store CPU a row (insert and merges until
-- settled) with 8, 7.9-8.2 with 32, and 9 active parts against 10-12 at the end.
ALTER TABLE events MODIFY SETTING merge_selector_base = 32;
