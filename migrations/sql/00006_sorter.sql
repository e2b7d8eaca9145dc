-- +goose Up
-- Sorters are the sorting machines: each belongs to exactly one station and
-- acts only there. Only the SHA-256 of a sorter's key is stored (the key is
-- 32 random bytes, so a fast hash is safe and a leaked table leaks no key).
CREATE TABLE sorters (
    id         text PRIMARY KEY,
    station_id text NOT NULL,
    key_hash   bytea NOT NULL UNIQUE,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The belt's lookup table: one current answer per parcel and station, from a
-- pre-sort batch or an on-the-fly sort at the belt. The chute is not stored:
-- it is chosen when answering, from the next hop, the current chute map and
-- which chutes are full. A row is a tombstone while invalidated_at >=
-- sorted_at (the parcel was re-sorted or intercepted after it was sorted
-- here); sorted_at is when the sort started, so a sort that began before an
-- invalidation can never overwrite it. redis_pending marks an invalidation
-- not yet applied to Redis (retried by the belt's worker).
CREATE TABLE presort_results (
    station_id       text NOT NULL,
    tracking_no      text NOT NULL,
    next_hop         text,
    exception_code   text,
    exception_reason text,
    flow             text NOT NULL,
    flow_version     integer NOT NULL,
    degraded         boolean NOT NULL DEFAULT false,
    source           text NOT NULL CHECK (source IN ('presort', 'on_the_fly')),
    sorted_at        timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    invalidated_at   timestamptz,
    redis_pending    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (station_id, tracking_no)
);
CREATE INDEX presort_results_expiry ON presort_results (expires_at);
CREATE INDEX presort_results_redis_pending ON presort_results (station_id) WHERE redis_pending;

-- What the sorting machine reported, one row per (sorter, sequence): the
-- primary key makes a replayed event a no-op, and the newest sequence of a
-- sorter is what a new event must exceed.
CREATE TABLE sorter_confirms (
    sorter_id     text NOT NULL,
    seq           bigint NOT NULL CHECK (seq > 0),
    station_id    text NOT NULL,
    work_order_id uuid NOT NULL REFERENCES work_orders (id),
    tracking_no   text,
    outcome       text NOT NULL,
    chute         integer,
    occurred_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sorter_id, seq)
);

-- Chutes the machine reported full (and, once cleared, not full). version
-- orders changes across instances: a cache never replaces a newer state with
-- an older one.
CREATE SEQUENCE chute_state_version;
CREATE TABLE chute_states (
    station_id text NOT NULL,
    chute      integer NOT NULL,
    is_full    boolean NOT NULL,
    version    bigint NOT NULL,
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, chute)
);

-- +goose Down
DROP TABLE chute_states;
DROP SEQUENCE chute_state_version;
DROP TABLE sorter_confirms;
DROP TABLE presort_results;
DROP TABLE sorters;
