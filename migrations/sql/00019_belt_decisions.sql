-- +goose Up
-- One row per belt decision (a Resolve, unary or on a stream): how long it
-- took from receipt to answer, the budget the sorter's deadline left (less
-- the belt's safety margin), whether it was late, and how it was decided.
-- The rows are written in batches by an asynchronous flusher (package
-- sorting/belt/decisionlog), never on the belt's path; a row can be lost
-- (full buffer, database down) and the Prometheus counters say how many.
-- Like the other history tables it is partitioned by day on the time the
-- row was written (the database's clock), and the partition job drops the
-- days past history.retain.belt_decisions.
CREATE TABLE belt_decisions (
    station_id  text NOT NULL,
    sorter_id   text NOT NULL,
    tracking_no text NOT NULL,
    source      text NOT NULL CHECK (source IN ('presorted', 'on_the_fly', 'fallback')),
    reason_code text,
    latency_us  bigint NOT NULL,
    budget_us   bigint NOT NULL,
    late        boolean NOT NULL,
    decided_at  timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (recorded_at);
SELECT history_partitions('belt_decisions', (now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + 7);
CREATE INDEX belt_decisions_sorter ON belt_decisions (station_id, decided_at);
CREATE INDEX belt_decisions_parcel ON belt_decisions (station_id, tracking_no, decided_at);

-- The per-sorter report asks, for each late decision, whether the machine
-- reported the parcel recirculated afterwards.
CREATE INDEX sorter_confirms_recirculated ON sorter_confirms (station_id, tracking_no, created_at)
    WHERE outcome = 'recirculated';

-- +goose Down
DROP INDEX sorter_confirms_recirculated;
DROP TABLE belt_decisions;
