-- The evidence log (SQLite): an RFC 6962 Merkle tree over every accepted
-- envelope (docs/evidence-format.md, "The evidence log").

-- One row per leaf, in leaf order. The fields are those the leaf entry
-- binds (with the agent's id and key id from `agents`); `leaf_hash` is kept
-- so that proofs need no rehashing, and verification recomputes it.
CREATE TABLE log_entries (
    idx              INTEGER PRIMARY KEY,
    agent_no         INTEGER NOT NULL REFERENCES agents(no),
    sequence         INTEGER NOT NULL,
    envelope_sha256  TEXT NOT NULL,
    accepted_at      TEXT NOT NULL,
    leaf_hash        BLOB NOT NULL
);

-- Roots of complete 256-leaf subtrees (level 8), so that the upper tree is
-- rebuilt at start without reading every leaf.
CREATE TABLE log_tiles (
    idx   INTEGER PRIMARY KEY,
    hash  BLOB NOT NULL
);

-- Signed checkpoints (C2SP tlog-checkpoint notes), one at least every
-- `checkpoint_seconds` while the log grows.
CREATE TABLE log_checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    signed_at  TEXT NOT NULL
);

-- Each run of the retention job that removed payloads (ISO/IEC 27001
-- 4.3.3: records are disposed of under a defined retention, visibly).
CREATE TABLE retention_runs (
    id         INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    cutoff     TEXT NOT NULL,
    retention  TEXT NOT NULL,
    pruned     INTEGER NOT NULL,
    -- Entries below this index have been looked at: the next run starts here.
    up_to      INTEGER NOT NULL
);

-- Where each envelope sits in the log, and when its payload was pruned
-- (the row and its metadata stay; `bytes` becomes empty).
ALTER TABLE envelopes ADD COLUMN log_index INTEGER;
ALTER TABLE envelopes ADD COLUMN pruned_at TEXT;
