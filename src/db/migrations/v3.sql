-- Version 3: login attempts, for the throttle shared by every process on one database.
-- (Also in schema.sql, which a new database gets whole; this upgrades a version-2 one.)

CREATE TABLE login_attempts (
    id       INTEGER PRIMARY KEY,   -- the reservation
    user_key TEXT NOT NULL,         -- the username as counted
    addr_key TEXT NOT NULL,         -- the client address
    at       INTEGER NOT NULL
);

CREATE INDEX login_attempts_by_user ON login_attempts (user_key, at);
CREATE INDEX login_attempts_by_addr ON login_attempts (addr_key, at);
