-- +goose Up
-- A station's chute map; version is an optimistic-concurrency counter so two
-- supervisors editing at once cannot overwrite each other silently.
CREATE TABLE chute_maps (
    station_id text PRIMARY KEY,
    version    integer NOT NULL,
    map        jsonb NOT NULL,
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Sorting flow configs, versioned: a new version is a new row, never an
-- update, so a stored sort result always names the exact config it ran.
CREATE TABLE sorting_flows (
    name       text NOT NULL,
    version    integer NOT NULL,
    config     text NOT NULL,
    checksum   text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- +goose Down
DROP TABLE sorting_flows;
DROP TABLE chute_maps;
