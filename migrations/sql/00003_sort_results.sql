-- +goose Up
-- One row per sort decision at a station (manual scan, pre-sort or the
-- sorter's on-the-fly sort). The newest row of a parcel at a station is its
-- current sort; packing checks bags against it.
CREATE TABLE sort_results (
    id               uuid PRIMARY KEY,
    work_order_id    uuid REFERENCES work_orders (id),
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
CREATE INDEX sort_results_parcel ON sort_results (station_id, tracking_no, created_at DESC);

-- Inbound scans: a parcel's arrival at a station.
CREATE TABLE receipts (
    id               uuid PRIMARY KEY,
    work_order_id    uuid NOT NULL REFERENCES work_orders (id),
    station_id       text NOT NULL,
    tracking_no      text NOT NULL,
    exception_code   text,
    exception_reason text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX receipts_parcel ON receipts (station_id, tracking_no, created_at DESC);

-- +goose Down
DROP TABLE receipts;
DROP TABLE sort_results;
