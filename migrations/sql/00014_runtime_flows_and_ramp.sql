-- +goose Up
-- Which flow each market sorts with, changed at runtime by ops; version 0
-- follows the newest version of the flow. Seeded from the shipped
-- markets.yaml when empty.
CREATE TABLE market_flows (
    market     text PRIMARY KEY,
    flow       text NOT NULL,
    version    integer NOT NULL DEFAULT 0 CHECK (version >= 0),
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every flow publication and market assignment: who, when, why, before
-- and after (a publication's before is the previous version).
CREATE TABLE flow_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject    text NOT NULL, -- flow name or market code
    action     text NOT NULL CHECK (action IN ('publish', 'assign')),
    actor      text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    before     jsonb,
    after      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flow_audit_subject ON flow_audit (subject, id DESC);

-- A release rule's guarded ramp: the schedule and guards (jsonb, validated
-- in Go), the step it is on and since when. The step lives here so every
-- instance serves the same one.
ALTER TABLE release_rules
    ADD COLUMN ramp            jsonb,
    ADD COLUMN ramp_step       integer NOT NULL DEFAULT 0,
    ADD COLUMN ramp_state      text NOT NULL DEFAULT '' CHECK (ramp_state IN ('', 'running', 'done', 'rolled_back')),
    ADD COLUMN step_started_at timestamptz NOT NULL DEFAULT now(),
    -- the site's shadow comparison totals when the step started: the step's
    -- progress is what was counted since
    ADD COLUMN step_base_comparisons bigint NOT NULL DEFAULT 0,
    ADD COLUMN step_base_mismatches  bigint NOT NULL DEFAULT 0;

-- A rollback's guard, value and threshold.
ALTER TABLE release_audit ADD COLUMN guard jsonb;

-- +goose Down
ALTER TABLE release_audit DROP COLUMN guard;
ALTER TABLE release_rules DROP COLUMN ramp, DROP COLUMN ramp_step, DROP COLUMN ramp_state, DROP COLUMN step_started_at,
    DROP COLUMN step_base_comparisons, DROP COLUMN step_base_mismatches;
DROP TABLE flow_audit;
DROP TABLE market_flows;
