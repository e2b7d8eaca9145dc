-- +goose Up
-- A work order is the audit record of one operation at a station. The pair
-- (station_id, scan_id) is the client's idempotency key: a replay finds the
-- stored response and returns it byte for byte.
CREATE TABLE work_orders (
    id           uuid PRIMARY KEY,
    station_id   text NOT NULL,
    type         text NOT NULL,
    tracking_no  text,
    subject_id   text,
    actor_kind   text NOT NULL CHECK (actor_kind IN ('operator', 'sorter', 'system')),
    actor_id     text NOT NULL,
    scan_id      text NOT NULL,
    request_hash bytea NOT NULL,
    outcome      text NOT NULL,
    response     bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT work_orders_scan UNIQUE (station_id, scan_id)
);
CREATE INDEX work_orders_parcel ON work_orders (station_id, tracking_no, created_at DESC);

-- The transactional outbox: tracking events are written in the same
-- transaction as their work order and relayed to the order center at least
-- once. The identity column orders a parcel's events (writers serialise per
-- parcel, see package workorder).
CREATE TABLE tracking_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    work_order_id   uuid NOT NULL REFERENCES work_orders (id),
    tracking_no     text NOT NULL,
    station_id      text NOT NULL,
    type            text NOT NULL,
    actor_id        text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz
);
CREATE INDEX tracking_outbox_pending ON tracking_outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX tracking_outbox_parcel ON tracking_outbox (tracking_no, id) WHERE status <> 'delivered';

-- +goose Down
DROP TABLE tracking_outbox;
DROP TABLE work_orders;
