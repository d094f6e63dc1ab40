-- annexa collector schema, version 1 (SQLite).

CREATE TABLE agents (
    no                INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    key_id            TEXT NOT NULL UNIQUE,
    public_key        TEXT NOT NULL,
    hostname          TEXT NOT NULL,
    machine_id_sha256 TEXT NOT NULL,
    labels            TEXT NOT NULL,
    facts             TEXT NOT NULL,
    enrolled_at       TEXT NOT NULL,
    revoked_at        TEXT,
    next_sequence     INTEGER NOT NULL DEFAULT 1,
    last_digest       TEXT,
    last_seen_at      TEXT
);

CREATE TABLE enroll_tokens (
    hash        TEXT PRIMARY KEY,
    labels      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     TEXT,
    used_by     TEXT
);

CREATE TABLE api_tokens (
    hash        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  INTEGER,
    revoked_at  TEXT
);

-- Envelope bytes exactly as received, with the parsed summary and results.
CREATE TABLE envelopes (
    id          INTEGER PRIMARY KEY,
    agent_no    INTEGER NOT NULL REFERENCES agents(no),
    sequence    INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    gap         TEXT,
    summary     TEXT NOT NULL,
    results     TEXT NOT NULL,
    bytes       BLOB NOT NULL,
    UNIQUE (agent_no, sequence)
);

-- The latest result per (host, check), kept current at ingest so that
-- conformity questions never scan the history. A row changes only when the
-- status or observed value changes; `since_sequence` is the agent's envelope
-- that brought the current value, `agents.last_seen_at` says how fresh it is.
CREATE TABLE latest_results (
    agent_no        INTEGER NOT NULL REFERENCES agents(no),
    check_id        TEXT NOT NULL,
    status          TEXT NOT NULL,
    observed        TEXT,
    since_sequence  INTEGER NOT NULL,
    PRIMARY KEY (agent_no, check_id)
) WITHOUT ROWID;
