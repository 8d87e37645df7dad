-- Version 2 on PostgreSQL: signing keys for access tokens and rotating refresh tokens
-- (SQLite's migrations/v2.sql, with PostgreSQL's types). Applied after
-- schema.postgres.sql (version 1) by db/pg/mod.rs, in the same transaction when a
-- database is new. IF NOT EXISTS: a development build of the pg branch put these
-- tables into version 1; such a database upgrades too.

-- Ed25519 keys that sign access tokens (PASETO v4.public). `slot` is 'active' for the
-- one key that signs (UNIQUE: at most one; NULLs are distinct) and NULL for retiring
-- keys, which are still served until `signed_until` (no token they signed expires
-- later), then dropped.
CREATE TABLE IF NOT EXISTS signing_keys (
    kid           TEXT PRIMARY KEY,         -- PASERK id, k4.pid.…
    public_key    TEXT NOT NULL,            -- PASERK, k4.public.…
    secret_key    BYTEA NOT NULL,           -- Ed25519 seed || public key (64 bytes)
    slot          TEXT UNIQUE CHECK (slot = 'active'),
    created_at    BIGINT NOT NULL,
    retired_at    BIGINT,
    signed_until  BIGINT NOT NULL
);

-- A refresh family: the chain of refresh tokens grown from one password grant. Its id
-- is the `sid` of the access tokens it mints; revoking it ends every token in it.
CREATE TABLE IF NOT EXISTS refresh_families (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_version BIGINT NOT NULL,        -- the user's version when the family began
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,        -- created_at + --session-lifetime
    revoked_at      BIGINT
);

CREATE INDEX IF NOT EXISTS refresh_families_by_user ON refresh_families (user_id);
CREATE INDEX IF NOT EXISTS refresh_families_by_expiry ON refresh_families (expires_at);

-- Refresh tokens (apr_…), by sha256 like the others. Each is spent by the one refresh
-- that rotates it; presenting a spent one revokes its family.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,            -- min(issue + --session-window, family expiry)
    spent_at    BIGINT
);

CREATE INDEX IF NOT EXISTS refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_expiry ON refresh_tokens (expires_at);
