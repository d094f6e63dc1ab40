-- The agent's clock when it delivered each envelope (its annexa-agent-time
-- header), beside received_at, the collector's: both clocks are on record,
-- and their difference is the skew the collector's tolerance judged.
ALTER TABLE envelopes ADD COLUMN agent_time TEXT COLLATE "C";
