-- +goose Up
-- The terminal (a web terminal or a PDA) a session was opened on. It is
-- bound to the token here, server-side, so the per-terminal rate limit holds
-- whatever headers a client sends; NULL for a session opened without one.
ALTER TABLE auth_tokens ADD COLUMN terminal_id text;

-- +goose Down
ALTER TABLE auth_tokens DROP COLUMN terminal_id;
