-- +goose Up
-- belt_decisions takes a row per Resolve, tens of thousands a second at a
-- busy belt; two btree indexes on it cost the shared machine a fifth of the
-- belt's throughput (BENCHMARKS.md, "Resolve maximum throughput"). Rows
-- arrive in time order, so a BRIN index finds a window at a fraction of the
-- cost, and the report finds a late parcel's later decisions in one pass
-- over the window (decisionlog.Report), not by an index per parcel.
DROP INDEX belt_decisions_sorter;
DROP INDEX belt_decisions_parcel;
CREATE INDEX belt_decisions_decided ON belt_decisions USING brin (decided_at);

-- +goose Down
DROP INDEX belt_decisions_decided;
CREATE INDEX belt_decisions_sorter ON belt_decisions (station_id, decided_at);
CREATE INDEX belt_decisions_parcel ON belt_decisions (station_id, tracking_no, decided_at);
