-- +goose Up
-- The history tables grow by millions of rows a day. They become range
-- partitioned by day on the time the row was written (the database's
-- clock, never a time a caller passes: a sorter's occurred_at or a test's
-- clock must not decide whether a partition exists), so retention drops a
-- day's partition instead of deleting its rows. The singleton partition job
-- (package history) creates days ahead and drops days past retention.
--
-- A partitioned table's unique index must contain the partition key, so
-- (station_id, scan_id) could only be unique per day there. The idempotency
-- key moves to scan_keys, a plain table written in the same statement as
-- the work order: its primary key keeps every conflict semantics the
-- unique constraint on work_orders had (a duplicate fails the batch, a
-- concurrent duplicate waits for the first to commit), and it names the
-- work order and its partition for the replay lookup. Its rows are trimmed
-- after history.retain.scan_keys, which must stay shorter than the work
-- orders' retention and longer than any retry.
--
-- Foreign keys to work_orders(id) go: a partitioned work_orders can only
-- be referenced by (id, created_at), each table keeps its own retention
-- (a work order's day may go before its outbox events are delivered), and
-- every referencing row is written by package workorder's batch or
-- transaction together with its work order.

-- history_partitions creates the daily partitions of p_table from p_first
-- to p_last (UTC days) that are missing and returns how many it made.
-- +goose StatementBegin
CREATE FUNCTION history_partitions(p_table text, p_first date, p_last date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    made integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('history_partitions:' || p_table, 0));
    FOR d IN SELECT g::date FROM generate_series(p_first, p_last, interval '1 day') AS g LOOP
        IF to_regclass(p_table || '_p' || to_char(d, 'YYYYMMDD')) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           p_table || '_p' || to_char(d, 'YYYYMMDD'), p_table,
                           d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END
$$;
-- +goose StatementEnd

-- history_cover_rows makes room for the rows of an upgraded database:
-- daily partitions from the oldest row (at most 60 days back) to a week
-- ahead, and one <table>_p_old partition for anything older, which
-- retention drops as a whole.
-- +goose StatementBegin
CREATE FUNCTION history_cover_rows(p_table text, p_oldest timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    first date := greatest(coalesce((p_oldest AT TIME ZONE 'UTC')::date, today), today - 60);
BEGIN
    IF p_oldest IS NOT NULL AND (p_oldest AT TIME ZONE 'UTC')::date < first THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (MINVALUE) TO (%L)',
                       p_table || '_p_old', p_table, first::timestamp AT TIME ZONE 'UTC');
    END IF;
    PERFORM history_partitions(p_table, first, today + 7);
END
$$;
-- +goose StatementEnd

ALTER TABLE tracking_outbox DROP CONSTRAINT tracking_outbox_work_order_id_fkey;
ALTER TABLE sort_results DROP CONSTRAINT sort_results_work_order_id_fkey;
ALTER TABLE receipts DROP CONSTRAINT receipts_work_order_id_fkey;
ALTER TABLE sorter_confirms DROP CONSTRAINT sorter_confirms_work_order_id_fkey;

-- The idempotency keys, with the work order each one recorded.
CREATE TABLE scan_keys (
    station_id    text NOT NULL,
    scan_id       text NOT NULL,
    work_order_id uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT scan_keys_pkey PRIMARY KEY (station_id, scan_id)
);
CREATE INDEX scan_keys_created ON scan_keys (created_at);
INSERT INTO scan_keys (station_id, scan_id, work_order_id, created_at)
SELECT station_id, scan_id, id, created_at FROM work_orders;

-- work_orders
ALTER TABLE work_orders RENAME TO work_orders_unpartitioned;
ALTER TABLE work_orders_unpartitioned DROP CONSTRAINT work_orders_pkey, DROP CONSTRAINT work_orders_scan;
DROP INDEX work_orders_parcel;
CREATE TABLE work_orders (
    id           uuid NOT NULL,
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
    CONSTRAINT work_orders_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
SELECT history_cover_rows('work_orders', (SELECT min(created_at) FROM work_orders_unpartitioned));
INSERT INTO work_orders SELECT id, station_id, type, tracking_no, subject_id, actor_kind, actor_id, scan_id,
       request_hash, outcome, response, created_at FROM work_orders_unpartitioned;
CREATE INDEX work_orders_parcel ON work_orders (tracking_no, created_at DESC);

-- tracking_outbox: created_at is its work order's (the same statement
-- writes both), so a parcel's history finds the work order's partition;
-- actor_kind is copied from the work order, so the relay reads no other
-- table and a pending event outlives its work order's retention.
ALTER TABLE tracking_outbox RENAME TO tracking_outbox_unpartitioned;
ALTER TABLE tracking_outbox_unpartitioned DROP CONSTRAINT tracking_outbox_pkey,
    DROP CONSTRAINT tracking_outbox_event_id_key;
DROP INDEX tracking_outbox_pending, tracking_outbox_parcel, tracking_outbox_pending_id, tracking_outbox_dead;
CREATE SEQUENCE tracking_outbox_seq;
CREATE TABLE tracking_outbox (
    id              bigint NOT NULL DEFAULT nextval('tracking_outbox_seq'),
    event_id        uuid NOT NULL,
    work_order_id   uuid NOT NULL,
    tracking_no     text NOT NULL,
    station_id      text NOT NULL,
    type            text NOT NULL,
    actor_kind      text NOT NULL DEFAULT 'system' CHECK (actor_kind IN ('operator', 'sorter', 'system')),
    actor_id        text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz,
    redriven_by     text,
    redriven_at     timestamptz,
    traceparent     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tracking_outbox_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE tracking_outbox_seq OWNED BY tracking_outbox.id;
SELECT history_cover_rows('tracking_outbox', (
    SELECT min(coalesce(w.created_at, o.occurred_at)) FROM tracking_outbox_unpartitioned o
      LEFT JOIN work_orders_unpartitioned w ON w.id = o.work_order_id));
INSERT INTO tracking_outbox (id, event_id, work_order_id, tracking_no, station_id, type, actor_kind, actor_id, occurred_at,
                             payload, status, attempts, next_attempt_at, last_error, delivered_at, redriven_by, redriven_at,
                             traceparent, created_at)
SELECT o.id, o.event_id, o.work_order_id, o.tracking_no, o.station_id, o.type, coalesce(w.actor_kind, 'system'), o.actor_id,
       o.occurred_at, o.payload, o.status, o.attempts, o.next_attempt_at, o.last_error, o.delivered_at, o.redriven_by,
       o.redriven_at, o.traceparent, coalesce(w.created_at, o.occurred_at)
  FROM tracking_outbox_unpartitioned o LEFT JOIN work_orders_unpartitioned w ON w.id = o.work_order_id;
SELECT setval('tracking_outbox_seq', coalesce((SELECT max(id) FROM tracking_outbox), 0) + 1, false);
CREATE INDEX tracking_outbox_pending ON tracking_outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX tracking_outbox_parcel ON tracking_outbox (tracking_no, id) WHERE status <> 'delivered';
CREATE INDEX tracking_outbox_pending_id ON tracking_outbox (id) WHERE status = 'pending';
CREATE INDEX tracking_outbox_dead ON tracking_outbox (id) WHERE status = 'dead';
-- (tracking_outbox_delivered, for pruning by DELETE, is not made again.)
-- A parcel's history names the work orders whose events name it,
-- delivered or not.
CREATE INDEX tracking_outbox_tracking ON tracking_outbox (tracking_no, station_id);
DROP TABLE tracking_outbox_unpartitioned;
DROP TABLE work_orders_unpartitioned;

-- sort_results: created_at stays the sort's time (the newest sort of a
-- parcel is its current one); recorded_at is the partition key.
ALTER TABLE sort_results RENAME TO sort_results_unpartitioned;
ALTER TABLE sort_results_unpartitioned DROP CONSTRAINT sort_results_pkey;
DROP INDEX sort_results_parcel;
CREATE TABLE sort_results (
    id               uuid NOT NULL,
    work_order_id    uuid,
    station_id       text NOT NULL,
    tracking_no      text NOT NULL,
    next_hop         text,
    chute            integer NOT NULL,
    exception_code   text,
    exception_reason text,
    flow             text NOT NULL,
    flow_version     integer NOT NULL,
    degraded         jsonb NOT NULL DEFAULT '[]',
    trace            jsonb,
    source           text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'presort', 'sorter')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sort_results_pkey PRIMARY KEY (id, recorded_at)
) PARTITION BY RANGE (recorded_at);
SELECT history_cover_rows('sort_results', (SELECT min(created_at) FROM sort_results_unpartitioned));
INSERT INTO sort_results SELECT id, work_order_id, station_id, tracking_no, next_hop, chute, exception_code, exception_reason,
       flow, flow_version, degraded, trace, source, created_at, created_at FROM sort_results_unpartitioned;
CREATE INDEX sort_results_parcel ON sort_results (station_id, tracking_no, created_at DESC);
DROP TABLE sort_results_unpartitioned;

-- parcel_state_history: at stays the operation's time; recorded_at is
-- the partition key.
ALTER TABLE parcel_state_history RENAME TO parcel_state_history_unpartitioned;
DROP INDEX parcel_state_history_parcel;
CREATE TABLE parcel_state_history (
    station_id     text NOT NULL,
    tracking_no    text NOT NULL,
    visit          integer NOT NULL,
    op             text NOT NULL,
    state          text NOT NULL,
    next_hop       text,
    chute          integer,
    bag_id         text,
    handover_id    text,
    exception_code text,
    work_order_id  uuid NOT NULL,
    at             timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (recorded_at);
SELECT history_cover_rows('parcel_state_history', (SELECT min(at) FROM parcel_state_history_unpartitioned));
INSERT INTO parcel_state_history SELECT station_id, tracking_no, visit, op, state, next_hop, chute, bag_id, handover_id,
       exception_code, work_order_id, at, at FROM parcel_state_history_unpartitioned;
CREATE INDEX parcel_state_history_parcel ON parcel_state_history (tracking_no, station_id, at);
DROP TABLE parcel_state_history_unpartitioned;

DROP FUNCTION history_cover_rows;

-- +goose Down
-- Back to plain tables, every row kept; the references come back NOT VALID
-- (retention may have dropped a referenced work order).
ALTER TABLE work_orders RENAME TO work_orders_partitioned;
ALTER TABLE work_orders_partitioned DROP CONSTRAINT work_orders_pkey;
DROP INDEX work_orders_parcel;
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
INSERT INTO work_orders SELECT * FROM work_orders_partitioned;
CREATE INDEX work_orders_parcel ON work_orders (tracking_no, created_at DESC);
DROP TABLE work_orders_partitioned;
DROP TABLE scan_keys;

ALTER TABLE tracking_outbox RENAME TO tracking_outbox_partitioned;
ALTER TABLE tracking_outbox_partitioned DROP CONSTRAINT tracking_outbox_pkey;
DROP INDEX tracking_outbox_pending, tracking_outbox_parcel, tracking_outbox_pending_id, tracking_outbox_dead,
    tracking_outbox_tracking;
CREATE TABLE tracking_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    work_order_id   uuid NOT NULL,
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
    delivered_at    timestamptz,
    redriven_by     text,
    redriven_at     timestamptz,
    traceparent     text
);
INSERT INTO tracking_outbox (id, event_id, work_order_id, tracking_no, station_id, type, actor_id, occurred_at, payload,
                             status, attempts, next_attempt_at, last_error, delivered_at, redriven_by, redriven_at, traceparent)
OVERRIDING SYSTEM VALUE
SELECT id, event_id, work_order_id, tracking_no, station_id, type, actor_id, occurred_at, payload,
       status, attempts, next_attempt_at, last_error, delivered_at, redriven_by, redriven_at, traceparent FROM tracking_outbox_partitioned;
SELECT setval(pg_get_serial_sequence('tracking_outbox', 'id'), coalesce((SELECT max(id) FROM tracking_outbox), 0) + 1, false);
DROP TABLE tracking_outbox_partitioned;
CREATE INDEX tracking_outbox_pending ON tracking_outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX tracking_outbox_parcel ON tracking_outbox (tracking_no, id) WHERE status <> 'delivered';
CREATE INDEX tracking_outbox_pending_id ON tracking_outbox (id) WHERE status = 'pending';
CREATE INDEX tracking_outbox_dead ON tracking_outbox (id) WHERE status = 'dead';
CREATE INDEX tracking_outbox_delivered ON tracking_outbox (delivered_at) WHERE status = 'delivered';

ALTER TABLE sort_results RENAME TO sort_results_partitioned;
ALTER TABLE sort_results_partitioned DROP CONSTRAINT sort_results_pkey;
DROP INDEX sort_results_parcel;
CREATE TABLE sort_results (
    id               uuid PRIMARY KEY,
    work_order_id    uuid,
    station_id       text NOT NULL,
    tracking_no      text NOT NULL,
    next_hop         text,
    chute            integer NOT NULL,
    exception_code   text,
    exception_reason text,
    flow             text NOT NULL,
    flow_version     integer NOT NULL,
    degraded         jsonb NOT NULL DEFAULT '[]',
    trace            jsonb,
    source           text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'presort', 'sorter')),
    created_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sort_results SELECT id, work_order_id, station_id, tracking_no, next_hop, chute, exception_code, exception_reason,
       flow, flow_version, degraded, trace, source, created_at FROM sort_results_partitioned;
CREATE INDEX sort_results_parcel ON sort_results (station_id, tracking_no, created_at DESC);
DROP TABLE sort_results_partitioned;

ALTER TABLE parcel_state_history RENAME TO parcel_state_history_partitioned;
DROP INDEX parcel_state_history_parcel;
CREATE TABLE parcel_state_history (
    station_id     text NOT NULL,
    tracking_no    text NOT NULL,
    visit          integer NOT NULL,
    op             text NOT NULL,
    state          text NOT NULL,
    next_hop       text,
    chute          integer,
    bag_id         text,
    handover_id    text,
    exception_code text,
    work_order_id  uuid NOT NULL,
    at             timestamptz NOT NULL
);
INSERT INTO parcel_state_history SELECT station_id, tracking_no, visit, op, state, next_hop, chute, bag_id, handover_id,
       exception_code, work_order_id, at FROM parcel_state_history_partitioned;
CREATE INDEX parcel_state_history_parcel ON parcel_state_history (tracking_no, station_id, at);
DROP TABLE parcel_state_history_partitioned;

ALTER TABLE tracking_outbox ADD CONSTRAINT tracking_outbox_work_order_id_fkey
    FOREIGN KEY (work_order_id) REFERENCES work_orders (id) NOT VALID;
ALTER TABLE sort_results ADD CONSTRAINT sort_results_work_order_id_fkey
    FOREIGN KEY (work_order_id) REFERENCES work_orders (id) DEFERRABLE INITIALLY DEFERRED NOT VALID;
ALTER TABLE receipts ADD CONSTRAINT receipts_work_order_id_fkey
    FOREIGN KEY (work_order_id) REFERENCES work_orders (id) DEFERRABLE INITIALLY DEFERRED NOT VALID;
ALTER TABLE sorter_confirms ADD CONSTRAINT sorter_confirms_work_order_id_fkey
    FOREIGN KEY (work_order_id) REFERENCES work_orders (id) DEFERRABLE INITIALLY DEFERRED NOT VALID;
DROP FUNCTION history_partitions;
