-- Version 3: login attempts, for a failed-login throttle shared by every process on
-- the database. Only `serve` on PostgreSQL uses it; SQLite has it so one conformance
-- suite covers both. (Also in schema.sql, which a new database gets whole.)

-- A login attempt is reserved before the password is hashed; a failure keeps its row,
-- a success gives it back. Rows older than the 5-minute window are purged.
CREATE TABLE login_attempts (
    id       INTEGER PRIMARY KEY,   -- the reservation
    user_key TEXT NOT NULL,         -- the username as counted
    addr_key TEXT NOT NULL,         -- the client address
    at       INTEGER NOT NULL
);
CREATE INDEX login_attempts_by_user ON login_attempts (user_key, at);
CREATE INDEX login_attempts_by_addr ON login_attempts (addr_key, at);
