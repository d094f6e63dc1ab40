-- Keys an agent rotated away from (docs/security.md): each with the last
-- sequence number it signed, so that evidence it signed stays verifiable
-- and an envelope it signed before the rotation is still recognised when
-- re-sent. A retired key can neither sign new evidence nor enroll again.
CREATE TABLE agent_keys (
    agent_no       INTEGER NOT NULL REFERENCES agents(no),
    key_id         TEXT NOT NULL UNIQUE,
    public_key     TEXT NOT NULL,
    until_sequence INTEGER NOT NULL,
    retired_at     TEXT NOT NULL,
    PRIMARY KEY (agent_no, until_sequence)
);
