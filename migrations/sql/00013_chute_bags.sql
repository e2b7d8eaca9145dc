-- +goose Up
-- A bag hangs under a chute of a sorter: every parcel the machine confirms
-- into that chute goes into the bag. One bag per chute, a bag at one chute;
-- sealing the bag unbinds it. Written by package packing.
CREATE TABLE chute_bags (
    station_id text NOT NULL,
    chute      integer NOT NULL CHECK (chute > 0),
    bag_id     text NOT NULL UNIQUE REFERENCES bags (id),
    bound_by   text NOT NULL,
    bound_at   timestamptz NOT NULL,
    PRIMARY KEY (station_id, chute)
);

-- What a bag holds by weight, from the parcels' waybills (0 when unknown),
-- for the fill that drives "seal soon" and "seal now".
ALTER TABLE bag_items ADD COLUMN weight_g integer NOT NULL DEFAULT 0 CHECK (weight_g >= 0);
ALTER TABLE bags ADD COLUMN contents_g integer NOT NULL DEFAULT 0 CHECK (contents_g >= 0);

-- Per-station bag limits; a station without a row uses the configured
-- defaults.
CREATE TABLE bag_limits (
    station_id    text PRIMARY KEY,
    max_parcels   integer NOT NULL CHECK (max_parcels > 0),
    max_grams     integer NOT NULL CHECK (max_grams > 0),
    updated_by    text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A supervisor may take a chute out of use: Resolve skips it like a full
-- one.
ALTER TABLE chute_states ADD COLUMN disabled boolean NOT NULL DEFAULT false;

-- The floor: parcels waiting at a chute unbagged, and the put-aside queue.
CREATE INDEX parcel_states_floor ON parcel_states (station_id, state, chute) WHERE state IN ('sorted', 'exception');

-- +goose Down
DROP INDEX parcel_states_floor;
ALTER TABLE chute_states DROP COLUMN disabled;
DROP TABLE bag_limits;
ALTER TABLE bags DROP COLUMN contents_g;
ALTER TABLE bag_items DROP COLUMN weight_g;
DROP TABLE chute_bags;
