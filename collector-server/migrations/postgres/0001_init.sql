-- annexa collector schema (PostgreSQL): the same tables and meanings as
-- migrations/sqlite/0001-0004, in one step. Integers are BIGINT (Rust i64);
-- text compares byte-wise (COLLATE "C") as in SQLite, so that RFC 3339
-- times and ids order the same on both backends whatever the database's
-- locale.

CREATE TABLE agents (
    no                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                TEXT COLLATE "C" NOT NULL UNIQUE,
    key_id            TEXT COLLATE "C" NOT NULL UNIQUE,
    public_key        TEXT NOT NULL,
    hostname          TEXT COLLATE "C" NOT NULL,
    machine_id_sha256 TEXT NOT NULL,
    labels            TEXT NOT NULL,
    facts             TEXT NOT NULL,
    enrolled_at       TEXT COLLATE "C" NOT NULL,
    revoked_at        TEXT COLLATE "C",
    next_sequence     BIGINT NOT NULL DEFAULT 1,
    last_digest       TEXT,
    last_seen_at      TEXT COLLATE "C",
    -- How the agent's newest evidence was produced (JSON).
    run_profile       TEXT
);

CREATE TABLE enroll_tokens (
    hash        TEXT COLLATE "C" PRIMARY KEY,
    labels      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     TEXT,
    used_by     TEXT
);

CREATE TABLE api_tokens (
    hash        TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    role        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  BIGINT,
    revoked_at  TEXT
);

-- Envelope bytes exactly as received, with the parsed summary and results;
-- `log_index` is its leaf in the log, `pruned_at` when retention removed
-- the payload (`bytes` then empty).
CREATE TABLE envelopes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_no    BIGINT NOT NULL REFERENCES agents(no),
    sequence    BIGINT NOT NULL,
    sha256      TEXT COLLATE "C" NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL,
    gap         TEXT,
    summary     TEXT NOT NULL,
    results     TEXT NOT NULL,
    bytes       BYTEA NOT NULL,
    log_index   BIGINT,
    pruned_at   TEXT COLLATE "C",
    UNIQUE (agent_no, sequence)
);

CREATE TABLE latest_results (
    agent_no        BIGINT NOT NULL REFERENCES agents(no),
    check_id        TEXT COLLATE "C" NOT NULL,
    status          TEXT NOT NULL,
    observed        TEXT,
    since_sequence  BIGINT NOT NULL,
    PRIMARY KEY (agent_no, check_id)
);

CREATE TABLE soa_versions (
    version      BIGINT PRIMARY KEY,
    edition      TEXT NOT NULL,
    format       TEXT NOT NULL,
    source       TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    imported_by  TEXT NOT NULL,
    imported_at  TEXT COLLATE "C" NOT NULL,
    comment      TEXT
);

CREATE TABLE conformity (
    agent_no        BIGINT NOT NULL REFERENCES agents(no),
    control_id      TEXT COLLATE "C" NOT NULL,
    state           TEXT NOT NULL,
    detail          TEXT NOT NULL,
    since           TEXT COLLATE "C" NOT NULL,
    since_sequence  BIGINT,
    soa_version     BIGINT NOT NULL,
    PRIMARY KEY (agent_no, control_id)
);

CREATE TABLE conformity_timeline (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_no     BIGINT NOT NULL REFERENCES agents(no),
    control_id   TEXT COLLATE "C" NOT NULL,
    state        TEXT NOT NULL,
    previous     TEXT,
    at           TEXT COLLATE "C" NOT NULL,
    cause        TEXT NOT NULL,
    sequence     BIGINT,
    soa_version  BIGINT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX conformity_timeline_by_host ON conformity_timeline (agent_no, control_id, id);
CREATE INDEX conformity_timeline_by_control ON conformity_timeline (control_id, id);
CREATE INDEX conformity_timeline_by_time ON conformity_timeline (at);

-- The evidence log (docs/evidence-format.md, "The evidence log").
CREATE TABLE log_entries (
    idx              BIGINT PRIMARY KEY,
    agent_no         BIGINT NOT NULL REFERENCES agents(no),
    sequence         BIGINT NOT NULL,
    envelope_sha256  TEXT NOT NULL,
    accepted_at      TEXT COLLATE "C" NOT NULL,
    leaf_hash        BYTEA NOT NULL
);

CREATE TABLE log_tiles (
    idx   BIGINT PRIMARY KEY,
    hash  BYTEA NOT NULL
);

CREATE TABLE log_checkpoints (
    size       BIGINT PRIMARY KEY,
    root       BYTEA NOT NULL,
    note       TEXT NOT NULL,
    signed_at  TEXT NOT NULL
);

CREATE TABLE retention_runs (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TEXT NOT NULL,
    cutoff     TEXT COLLATE "C" NOT NULL,
    retention  TEXT NOT NULL,
    pruned     BIGINT NOT NULL,
    up_to      BIGINT NOT NULL
);
