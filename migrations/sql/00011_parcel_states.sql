-- +goose Up
-- The parcel's state at a station, written by the same statement batch as
-- every work order (workorder.parcel_step), and its history.
CREATE TABLE parcel_states (
    station_id          text NOT NULL,
    tracking_no         text NOT NULL,
    visit               integer NOT NULL CHECK (visit > 0),
    state               text NOT NULL CHECK (state IN ('received', 'sorted', 'bagged', 'sealed', 'departed', 'exception')),
    next_hop            text,
    chute               integer,
    bag_id              text,
    handover_id         text,
    exception_code      text,
    weight_g            integer NOT NULL DEFAULT 0, -- from the waybill, when a sort knew it
    work_order_id       uuid NOT NULL,
    visit_started_at    timestamptz NOT NULL,
    visit_work_order_id uuid NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (station_id, tracking_no)
);
CREATE INDEX parcel_states_bag ON parcel_states (bag_id) WHERE bag_id IS NOT NULL;

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
CREATE INDEX parcel_state_history_parcel ON parcel_state_history (tracking_no, station_id, at);

-- parcel_step checks an operation against the parcel's current state and
-- moves it, in one statement, so that a work order's batch can carry it.
-- The rule itself lives in Go (workorder.matrix): p_refuse_states lists the
-- states ('' for none) from which the operation is refused and
-- p_refuse_codes the code for each. A refusal raises SQLSTATE SP409 with the
-- code as message and the current state as JSON detail, which aborts the
-- whole batch: nothing is written. With p_state NULL it only checks.
-- +goose StatementBegin
CREATE FUNCTION parcel_step(p_station text, p_tn text, p_wo uuid, p_op text, p_state text,
                            p_next_hop text, p_chute integer, p_bag text, p_handover text, p_exception text,
                            p_weight integer, p_refuse_states text[], p_refuse_codes text[], p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cur parcel_states%ROWTYPE;
    i integer;
BEGIN
    SELECT * INTO cur FROM parcel_states WHERE station_id = p_station AND tracking_no = p_tn FOR UPDATE;
    i := array_position(p_refuse_states, CASE WHEN FOUND THEN cur.state ELSE '' END);
    IF i IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SP409', MESSAGE = p_refuse_codes[i],
            DETAIL = CASE WHEN cur.station_id IS NULL THEN '{}' ELSE row_to_json(cur)::text END;
    END IF;
    IF p_state IS NULL THEN
        RETURN;
    END IF;
    IF cur.station_id IS NULL OR cur.state = 'departed' THEN
        -- A new visit: the first stay, or a parcel that came back.
        cur.visit := coalesce(cur.visit, 0) + 1;
        cur.visit_started_at := p_at;
        cur.visit_work_order_id := p_wo;
    END IF;
    INSERT INTO parcel_states AS s (station_id, tracking_no, visit, state, next_hop, chute, bag_id, handover_id,
                                    exception_code, weight_g, work_order_id, visit_started_at, visit_work_order_id, updated_at)
    VALUES (p_station, p_tn, cur.visit, p_state, p_next_hop, p_chute, p_bag, p_handover, p_exception,
            -- a move that does not know the weight keeps the one known
            CASE WHEN coalesce(p_weight, 0) > 0 THEN p_weight ELSE coalesce(cur.weight_g, 0) END, p_wo,
            cur.visit_started_at, cur.visit_work_order_id, p_at)
    ON CONFLICT (station_id, tracking_no) DO UPDATE SET
        visit = EXCLUDED.visit, state = EXCLUDED.state, next_hop = EXCLUDED.next_hop, chute = EXCLUDED.chute,
        bag_id = EXCLUDED.bag_id, handover_id = EXCLUDED.handover_id, exception_code = EXCLUDED.exception_code,
        weight_g = EXCLUDED.weight_g,
        work_order_id = EXCLUDED.work_order_id, visit_started_at = EXCLUDED.visit_started_at,
        visit_work_order_id = EXCLUDED.visit_work_order_id, updated_at = EXCLUDED.updated_at;
    INSERT INTO parcel_state_history (station_id, tracking_no, visit, op, state, next_hop, chute, bag_id, handover_id,
                                      exception_code, work_order_id, at)
    VALUES (p_station, p_tn, cur.visit, p_op, p_state, p_next_hop, p_chute, p_bag, p_handover, p_exception, p_wo, p_at);
END
$$;
-- +goose StatementEnd

-- An operation run by workorder.Transact writes its own rows before its
-- work order (the answer is known only at the end), in one transaction:
-- their references to it are checked at commit.
ALTER TABLE sort_results ALTER CONSTRAINT sort_results_work_order_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE receipts ALTER CONSTRAINT receipts_work_order_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE sorter_confirms ALTER CONSTRAINT sorter_confirms_work_order_id_fkey DEFERRABLE INITIALLY DEFERRED;

-- A station upgraded with parcels on its floor: their state from what it
-- recorded before (the newest sort, then the bag that holds them).
INSERT INTO parcel_states (station_id, tracking_no, visit, state, next_hop, chute, exception_code, work_order_id,
                           visit_started_at, visit_work_order_id, updated_at)
SELECT DISTINCT ON (station_id, tracking_no) station_id, tracking_no, 1,
       CASE WHEN exception_code IS NULL THEN 'sorted' ELSE 'exception' END, next_hop, chute, exception_code,
       work_order_id, created_at, work_order_id, created_at
  FROM sort_results ORDER BY station_id, tracking_no, created_at DESC;
INSERT INTO parcel_states AS s (station_id, tracking_no, visit, state, next_hop, bag_id, work_order_id,
                                visit_started_at, visit_work_order_id, updated_at)
SELECT i.station_id, i.tracking_no, 1, CASE b.status WHEN 'open' THEN 'bagged' ELSE 'sealed' END, b.next_hop, b.id,
       '00000000-0000-0000-0000-000000000000', i.added_at, '00000000-0000-0000-0000-000000000000', i.added_at
  FROM bag_items i JOIN bags b ON b.id = i.bag_id WHERE NOT i.departed
ON CONFLICT (station_id, tracking_no) DO UPDATE SET state = EXCLUDED.state, bag_id = EXCLUDED.bag_id,
    next_hop = EXCLUDED.next_hop, updated_at = EXCLUDED.updated_at;

-- +goose Down
ALTER TABLE sort_results ALTER CONSTRAINT sort_results_work_order_id_fkey NOT DEFERRABLE;
ALTER TABLE receipts ALTER CONSTRAINT receipts_work_order_id_fkey NOT DEFERRABLE;
ALTER TABLE sorter_confirms ALTER CONSTRAINT sorter_confirms_work_order_id_fkey NOT DEFERRABLE;
DROP FUNCTION parcel_step;
DROP TABLE parcel_state_history;
DROP TABLE parcel_states;
