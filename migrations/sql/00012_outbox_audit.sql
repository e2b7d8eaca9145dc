-- +goose Up
-- Every ops action on the tracking outbox: who asked, when, why, what and
-- how many events it changed. Written by package workorder in the same
-- transaction as the change itself.
CREATE TABLE outbox_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor       text NOT NULL,
    action      text NOT NULL CHECK (action IN ('redrive', 'retry_now')),
    reason      text NOT NULL DEFAULT '',
    event_ids   bigint[],           -- the ids asked for; NULL: every eligible event
    changed     integer NOT NULL,   -- events the action changed
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE outbox_audit;
