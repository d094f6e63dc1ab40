-- Envelopes and their results are compressible JSON of tens of KiB:
-- PostgreSQL compresses such values itself (TOAST), with pglz by default,
-- which cost more CPU than the rest of an append (bench/ingest.sh
-- DATABASE=postgres). LZ4 compresses almost as well at a fraction of the
-- CPU. Values already stored keep their compression.
ALTER TABLE envelopes ALTER COLUMN bytes SET COMPRESSION lz4;
ALTER TABLE envelopes ALTER COLUMN results SET COMPRESSION lz4;
ALTER TABLE envelopes ALTER COLUMN summary SET COMPRESSION lz4;
ALTER TABLE conformity_timeline ALTER COLUMN detail SET COMPRESSION lz4;
ALTER TABLE conformity ALTER COLUMN detail SET COMPRESSION lz4;
