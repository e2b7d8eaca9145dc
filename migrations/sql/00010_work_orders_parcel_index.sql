-- +goose Up
-- A parcel's operations are found by its tracking number; the station column
-- in front added nothing (a station's database holds its own work orders)
-- and made the index a match for "station_id = $1" alone. A connection's
-- generic plan for the replay lookup (station_id, scan_id), made while the
-- table was nearly empty, then chose it and filtered every work order of the
-- station on each scan until the next ANALYZE: sorts slowed down as the table
-- grew. Without a station-led second index the unique key is the only match.
DROP INDEX work_orders_parcel;
CREATE INDEX work_orders_parcel ON work_orders (tracking_no, created_at DESC);

-- +goose Down
DROP INDEX work_orders_parcel;
CREATE INDEX work_orders_parcel ON work_orders (station_id, tracking_no, created_at DESC);
