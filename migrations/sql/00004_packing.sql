-- +goose Up
-- A bag is opened at a station for one next hop; its id comes from the
-- network's container service. Open bags take parcels, a sealed bag is
-- immutable and waits for a handover, a departed bag left on a closed one.
CREATE TABLE bags (
    id         text PRIMARY KEY,
    station_id text NOT NULL,
    next_hop   text NOT NULL,
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'sealed', 'departed')),
    item_count integer NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    weight_g   integer,
    opened_by  text NOT NULL,
    opened_at  timestamptz NOT NULL,
    sealed_by  text,
    sealed_at  timestamptz,
    CHECK ((status = 'open') = (sealed_at IS NULL)),
    CHECK ((status = 'open') = (weight_g IS NULL))
);
CREATE INDEX bags_station_status ON bags (station_id, status, opened_at);

-- The parcels in a bag. `departed` flips when the bag leaves on a handover:
-- the partial unique index then stops holding the parcel, so it can be
-- bagged again where it arrives (or if it ever comes back), while it is
-- never in two open or sealed bags at once, whatever the instance.
CREATE TABLE bag_items (
    bag_id      text NOT NULL REFERENCES bags (id),
    tracking_no text NOT NULL,
    station_id  text NOT NULL,
    added_by    text NOT NULL,
    added_at    timestamptz NOT NULL,
    departed    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (bag_id, tracking_no)
);
CREATE UNIQUE INDEX bag_items_one_bag ON bag_items (tracking_no) WHERE NOT departed;

-- A handover loads sealed bags onto one departure: a linehaul trip (its
-- stops are copied from the linehaul service when the handover is created),
-- a last-mile rider or a third-party carrier. Closing it is final.
CREATE TABLE handovers (
    id         text PRIMARY KEY,
    station_id text NOT NULL,
    type       text NOT NULL CHECK (type IN ('linehaul', 'lastmile', 'thirdparty')),
    carrier_ref text NOT NULL,
    trip_stops text[] NOT NULL DEFAULT '{}',
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    closed_by  text,
    closed_at  timestamptz,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX handovers_station ON handovers (station_id, status, created_at);

-- A bag is on at most one handover (UNIQUE bag_id).
CREATE TABLE handover_bags (
    handover_id text NOT NULL REFERENCES handovers (id),
    bag_id      text NOT NULL UNIQUE REFERENCES bags (id),
    added_by    text NOT NULL,
    added_at    timestamptz NOT NULL,
    PRIMARY KEY (handover_id, bag_id)
);

-- The relay picks the oldest pending rows by id; without this index that
-- scan walks every delivered row first, and the table only grows.
CREATE INDEX tracking_outbox_pending_id ON tracking_outbox (id) WHERE status = 'pending';
CREATE INDEX tracking_outbox_dead ON tracking_outbox (id) WHERE status = 'dead';
-- Who re-drove a dead event, and when: ops actions are audited.
ALTER TABLE tracking_outbox ADD COLUMN redriven_by text, ADD COLUMN redriven_at timestamptz;

-- +goose Down
ALTER TABLE tracking_outbox DROP COLUMN redriven_at, DROP COLUMN redriven_by;
DROP INDEX tracking_outbox_dead;
DROP INDEX tracking_outbox_pending_id;
DROP TABLE handover_bags;
DROP TABLE handovers;
DROP TABLE bag_items;
DROP TABLE bags;
