-- Statement of Applicability versions and conformity (SQLite).

-- Every imported SoA, kept exactly as imported; versions are never
-- changed or deleted, so that a report can always name the one it used.
CREATE TABLE soa_versions (
    version      INTEGER PRIMARY KEY,
    edition      TEXT NOT NULL,
    format       TEXT NOT NULL,
    source       TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    imported_by  TEXT NOT NULL,
    imported_at  TEXT NOT NULL,
    comment      TEXT
);

-- The current state of each (host, automated control) as evidence and the
-- SoA decide it. Manual and excluded controls are not stored: the SoA
-- alone decides them.
CREATE TABLE conformity (
    agent_no        INTEGER NOT NULL REFERENCES agents(no),
    control_id      TEXT NOT NULL,
    state           TEXT NOT NULL,
    detail          TEXT NOT NULL,
    since           TEXT NOT NULL,
    since_sequence  INTEGER,
    soa_version     INTEGER NOT NULL,
    PRIMARY KEY (agent_no, control_id)
) WITHOUT ROWID;

-- Every change of a (host, control) state: append-only.
CREATE TABLE conformity_timeline (
    id           INTEGER PRIMARY KEY,
    agent_no     INTEGER NOT NULL REFERENCES agents(no),
    control_id   TEXT NOT NULL,
    state        TEXT NOT NULL,
    previous     TEXT,
    at           TEXT NOT NULL,
    cause        TEXT NOT NULL,
    sequence     INTEGER,
    soa_version  INTEGER NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX conformity_timeline_by_host ON conformity_timeline (agent_no, control_id, id);
CREATE INDEX conformity_timeline_by_control ON conformity_timeline (control_id, id);

-- How the agent's newest evidence was produced (JSON: evidence time,
-- schedule interval, parameters), for freshness and parameter checks.
ALTER TABLE agents ADD COLUMN run_profile TEXT;
