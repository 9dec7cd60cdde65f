-- Failed client-secret and password checks, per client id and per username, whether or not
-- that client or account exists. Shared by every process on the store; a success deletes the
-- row, and rows past `expires_at` no longer count (and are pruned).
CREATE TABLE auth_failures (
    kind         TEXT NOT NULL CHECK (kind IN ('client', 'account')),
    id           TEXT NOT NULL,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX auth_failures_by_expiry ON auth_failures (expires_at);

-- Client-secret rotation: the secret a rotation replaced keeps working until
-- `previous_secret_expires_at` (Unix seconds), then is ignored.
ALTER TABLE clients ADD COLUMN previous_secret_hash BLOB;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at INTEGER;
