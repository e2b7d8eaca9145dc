-- +goose Up
-- Operators are the people at the station: each belongs to exactly one
-- station and acts only there. Passwords are stored as argon2id hashes.
CREATE TABLE operators (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    station_id    text NOT NULL,
    role          text NOT NULL CHECK (role IN ('operator', 'supervisor', 'ops')),
    password_hash text NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a bearer token is stored: a leaked table does not leak
-- sessions.
CREATE TABLE auth_tokens (
    token_hash  bytea PRIMARY KEY,
    operator_id text NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX auth_tokens_operator ON auth_tokens (operator_id);

-- +goose Down
DROP TABLE auth_tokens;
DROP TABLE operators;
