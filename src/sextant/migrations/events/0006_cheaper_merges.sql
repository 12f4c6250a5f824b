-- Cheaper merges for the ingest path (measured with benchmarks/ingest.py; see README
-- "Ingestion"). Every row of `events` is rewritten by a merge several times while its part
-- grows, and for this wide table a merge costs more CPU per row than the insert did:
-- - parts stay in the compact format (all columns in one file) up to 1 GiB of
--   uncompressed data instead of 10 MiB: a wide part writes two files per column (57+),
--   which made merges of the small and middle-sized parts ~40 % dearer;
-- - merges combine parts of more similar sizes at once (base 8 instead of 5), so a row
--   goes through fewer merges on its way to a large part.
-- Settings of new parts only; existing parts are rewritten as merges pick them up.
ALTER TABLE events MODIFY SETTING min_bytes_for_wide_part = 1073741824, merge_selector_base = 8;
