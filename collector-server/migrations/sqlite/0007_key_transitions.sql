-- Rotations of the collector's key (docs/security.md): each transition
-- note is signed by the key it retires and the key it brings in, and takes
-- effect at a log size. Checkpoints up to that size may carry the old key.
CREATE TABLE log_key_transitions (
    id         INTEGER PRIMARY KEY,
    size       INTEGER NOT NULL,
    note       TEXT NOT NULL UNIQUE,
    rotated_at TEXT NOT NULL
);
