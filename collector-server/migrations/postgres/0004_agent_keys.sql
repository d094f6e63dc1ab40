-- Keys an agent rotated away from (docs/security.md): each with the last
-- sequence number it signed, so that evidence it signed stays verifiable
-- and an envelope it signed before the rotation is still recognised when
-- re-sent. A retired key can neither sign new evidence nor enroll again.
CREATE TABLE agent_keys (
    agent_no       BIGINT NOT NULL REFERENCES agents(no),
    key_id         TEXT COLLATE "C" NOT NULL UNIQUE,
    public_key     TEXT NOT NULL,
    until_sequence BIGINT NOT NULL,
    retired_at     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (agent_no, until_sequence)
);
