-- Refresh tokens (RFC 6749 §6) and revoked access tokens (RFC 7009): the same tables and
-- meaning as migrations/sqlite/0005_tokens.sql. Times are Unix seconds.

-- One family per grant: the first refresh token and every token rotated from it. Revoking the
-- family (replay, RFC 7009 revocation, a security event) ends every token in it at once.
CREATE TABLE refresh_families (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('account', 'client')),
    subject_id   TEXT NOT NULL,
    -- The scope granted at the start, space-separated; refreshes may narrow it, never widen.
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    -- The absolute lifetime: no token of the family is honoured at or after this time.
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX refresh_families_by_subject ON refresh_families (subject_kind, subject_id);
CREATE INDEX refresh_families_by_client ON refresh_families (client_id);
CREATE INDEX refresh_families_by_expiry ON refresh_families (expires_at);

-- Refresh tokens are stored only as the SHA-256 of the token string.
CREATE TABLE refresh_tokens (
    hash              BYTEA PRIMARY KEY,
    family_id         TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at         BIGINT NOT NULL,
    -- The idle lifetime: unused by this time, the token has expired.
    expires_at        BIGINT NOT NULL,
    -- Set once, by the one refresh that rotated this token.
    used_at           BIGINT,
    -- The access token issued together with this refresh token, revoked with the family.
    access_jti        TEXT,
    access_expires_at BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- Access tokens revoked before their expiry, by `jti`; every gatehouse keeps the list in its
-- snapshot. Rows are purged once the token could no longer pass verification anyway.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_by_expiry ON revoked_access_tokens (expires_at);
