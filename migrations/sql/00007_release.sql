-- +goose Up
-- Gray release: per site, which flow serves parcels and which candidate is
-- compared or ramped. version is an optimistic-concurrency counter.
CREATE TABLE release_rules (
    site_id           text PRIMARY KEY,
    stable_flow       text NOT NULL,
    stable_version    integer NOT NULL,
    candidate_flow    text,
    candidate_version integer,
    mode              text NOT NULL CHECK (mode IN ('off', 'shadow', 'split')),
    ratio_bp          integer NOT NULL CHECK (ratio_bp BETWEEN 0 AND 10000),
    salt              text NOT NULL,
    version           integer NOT NULL,
    updated_by        text NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Every change of a rule: who, when, why, before and after.
CREATE TABLE release_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id    text NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    forced     boolean NOT NULL DEFAULT false,
    before     jsonb,
    after      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX release_audit_site ON release_audit (site_id, id DESC);

-- Comparison counts per site and minute; mismatches in full below.
CREATE TABLE reconciliation_counts (
    site_id     text NOT NULL,
    minute      timestamptz NOT NULL,
    source      text NOT NULL CHECK (source IN ('shadow', 'noise', 'offline')),
    comparisons integer NOT NULL DEFAULT 0,
    mismatches  integer NOT NULL DEFAULT 0,
    drops       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, minute, source)
);

CREATE TABLE reconciliation_mismatches (
    id                uuid PRIMARY KEY,
    site_id           text NOT NULL,
    source            text NOT NULL,
    tracking_no       text NOT NULL,
    stable_flow       text NOT NULL,
    stable_version    integer NOT NULL,
    candidate_flow    text NOT NULL,
    candidate_version integer NOT NULL,
    stable            jsonb NOT NULL,
    candidate         jsonb NOT NULL,
    first_diff_node   text,
    first_diff_key    text,
    stable_trace      jsonb,
    candidate_trace   jsonb,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliation_mismatches_site ON reconciliation_mismatches (site_id, created_at DESC);

-- +goose Down
DROP TABLE reconciliation_mismatches;
DROP TABLE reconciliation_counts;
DROP TABLE release_audit;
DROP TABLE release_rules;
