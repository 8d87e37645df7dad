-- Version 2: signing keys for access tokens and rotating refresh tokens.
-- (Also in schema.sql, which a new database gets whole; this upgrades a version-1 one.)

-- Ed25519 keys that sign access tokens (PASETO v4.public). `slot` is 'active' for the
-- one key that signs (UNIQUE: at most one) and NULL for retiring keys, which are still
-- served until `signed_until` (no token they signed expires later), then dropped.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,         -- PASERK id, k4.pid.…
    public_key    TEXT NOT NULL,            -- PASERK, k4.public.…
    secret_key    BLOB NOT NULL,            -- Ed25519 seed || public key (64 bytes)
    slot          TEXT UNIQUE CHECK (slot = 'active'),
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER,
    signed_until  INTEGER NOT NULL
);

-- A refresh family: the chain of refresh tokens grown from one password grant. Its id
-- is the `sid` of the access tokens it mints; revoking it ends every token in it.
CREATE TABLE refresh_families (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_version INTEGER NOT NULL,       -- the user's version when the family began
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,       -- created_at + --session-lifetime
    revoked_at      INTEGER
);

CREATE INDEX refresh_families_by_user ON refresh_families (user_id);

-- Refresh tokens (apr_…), by sha256 like the others. Each is spent by the one refresh
-- that rotates it; presenting a spent one revokes its family.
CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,           -- min(issue + --session-window, family expiry)
    spent_at    INTEGER
) WITHOUT ROWID;

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
