-- Authorization codes (RFC 6749 §4.1), stored only as SHA-256 digests. A code is redeemed
-- at most once; what it issued is remembered so that a replay can revoke it (§4.1.2).
CREATE TABLE authorization_codes (
    code_hash      BYTEA PRIMARY KEY,
    client_id      TEXT NOT NULL,
    username       TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    auth_time      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    redeemed_at    BIGINT,
    issued_jti     TEXT,
    issued_exp     BIGINT,
    issued_family  TEXT
);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
