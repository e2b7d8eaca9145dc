-- +goose Up
-- The W3C traceparent of the request that wrote the event (NULL when it was
-- not traced): the relay continues that trace when it publishes the event
-- and hands the context on in the message headers.
ALTER TABLE tracking_outbox ADD COLUMN traceparent text;

-- +goose Down
ALTER TABLE tracking_outbox DROP COLUMN traceparent;
