-- The issuer's signing keys and their schedule (Unix seconds). A key is published at /jwks and
-- trusted from publish_at, signs from sign_from until retire_at, and is gone from drop_at.
-- private_key is the PKCS#8 key sealed with AES-256-GCM under the key-encryption key file
-- ([keys] encryption_key_path), the kid as associated data: the database alone never signs.
-- Mirrors migrations/sqlite/0004_signing_keys.sql.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BYTEA NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    publish_at  BIGINT NOT NULL,
    sign_from   BIGINT NOT NULL,
    retire_at   BIGINT,
    drop_at     BIGINT
);
