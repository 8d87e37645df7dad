-- The whole schema of appliance (user_version 3), compiled into the binary and applied
-- on first start by db/migrate.rs. Instants are integer Unix milliseconds.

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,          -- Argon2id PHC string
    session_version INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL
);

-- Sessions and personal access tokens. Only sha256(token) is stored, as the key.
CREATE TABLE tokens (
    token_hash      BLOB PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,   -- opaque random id, never derived from the token
    kind            TEXT NOT NULL CHECK (kind IN ('session', 'pat')),
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT,                   -- PATs only
    prefix          TEXT NOT NULL,          -- first 12 characters, to recognise a PAT
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,                -- NULL: never expires (PATs only)
    last_used_at    INTEGER,                -- PATs, written at most once a minute
    session_version INTEGER NOT NULL,       -- the user's version when issued
    revoked_at      INTEGER
) WITHOUT ROWID;

CREATE INDEX tokens_by_user ON tokens (user_id, kind);
CREATE INDEX tokens_by_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tokens_by_revocation ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;

-- Who changed what, when. Logins and logouts are not audited.
CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,                  -- cli:<OS user> or user:<username>
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);

-- Server-side secrets shared by every process on this database (the key that signs
-- sign-in form CSRF tokens), created on first use.
CREATE TABLE secrets (
    name    TEXT PRIMARY KEY,
    value   BLOB NOT NULL
) WITHOUT ROWID;

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

-- Login attempts, for the throttle shared by every process on one database (serve on
-- PostgreSQL uses it; SQLite has it so one conformance suite covers both). A failure
-- keeps its row for the 5-minute window; a success gives it back.
CREATE TABLE login_attempts (
    id       INTEGER PRIMARY KEY,   -- the reservation
    user_key TEXT NOT NULL,         -- the username as counted
    addr_key TEXT NOT NULL,         -- the client address
    at       INTEGER NOT NULL
);

CREATE INDEX login_attempts_by_user ON login_attempts (user_key, at);
CREATE INDEX login_attempts_by_addr ON login_attempts (addr_key, at);
