-- People and their keys (docs/security.md, "People"): what a person states
-- is signed with their own key, registered here by an admin. A person is
-- never deleted (their statements stay verifiable); revocation refuses
-- anything new they sign. E-mail addresses are stored lower-cased.
CREATE TABLE people (
    no          INTEGER PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Every key a person has had: the current one has no `retired_at`; a
-- retired key verifies what it signed before it was retired, and signs
-- nothing new.
CREATE TABLE person_keys (
    key_id      TEXT PRIMARY KEY,
    person_no   INTEGER NOT NULL REFERENCES people(no),
    public_key  TEXT NOT NULL,
    added_at    TEXT NOT NULL,
    retired_at  TEXT
) WITHOUT ROWID;

CREATE INDEX person_keys_by_person ON person_keys (person_no);
