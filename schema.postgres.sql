-- The PostgreSQL schema of appliance at version 1, compiled into the binary beside
-- schema.sql and applied by db/pg/mod.rs under an advisory lock; later steps (2:
-- signing keys and refresh tokens) are in src/db/pg/migrations/. The same tables and
-- guards as SQLite; instants are BIGINT Unix milliseconds.

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,          -- Argon2id PHC string
    session_version BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL
);

-- Sessions and personal access tokens. Only sha256(token) is stored, as the key.
CREATE TABLE tokens (
    token_hash      BYTEA PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,   -- opaque random id, never derived from the token
    kind            TEXT NOT NULL CHECK (kind IN ('session', 'pat')),
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT,                   -- PATs only
    prefix          TEXT NOT NULL,          -- first 12 characters, to recognise a PAT
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,                 -- NULL: never expires (PATs only)
    last_used_at    BIGINT,                 -- PATs, written at most once a minute
    session_version BIGINT NOT NULL,        -- the user's version when issued
    revoked_at      BIGINT
);

CREATE INDEX tokens_by_user ON tokens (user_id, kind);
CREATE INDEX tokens_by_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tokens_by_revocation ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

-- Who changed what, when. Logins and logouts are not audited.
CREATE TABLE audit (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,                  -- cli:<OS user> or user:<username>
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);

-- Server-side secrets shared by every replica (the key that signs sign-in form CSRF
-- tokens), created on first use with INSERT ... ON CONFLICT DO NOTHING, then read.
CREATE TABLE secrets (
    name    TEXT PRIMARY KEY,
    value   BYTEA NOT NULL
);

-- Login attempts (reserved before the password is hashed; a failure keeps its row,
-- a success gives it back), so every replica counts against the same limits. Rows
-- older than the 5-minute window are purged.
CREATE TABLE login_attempts (
    id       BIGINT PRIMARY KEY,    -- the reservation
    user_key TEXT NOT NULL,         -- the username as counted
    addr_key TEXT NOT NULL,         -- the client address
    at       BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_user ON login_attempts (user_key, at);
CREATE INDEX login_attempts_by_addr ON login_attempts (addr_key, at);
