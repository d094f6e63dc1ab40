-- Drift queries (GET /v1/drift) read the timeline by time: the state of
-- every (host, control) at a moment, and the changes in a window.
CREATE INDEX conformity_timeline_by_time ON conformity_timeline (at);
