-- The issuer's signing keys and their schedule (Unix seconds). A key is published at /jwks and
-- trusted from publish_at, signs from sign_from until retire_at, and is gone from drop_at.
-- private_key is the PKCS#8 key sealed with AES-256-GCM under the key-encryption key file
-- ([keys] encryption_key_path), the kid as associated data: the database alone never signs.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    private_key BLOB NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    publish_at  INTEGER NOT NULL,
    sign_from   INTEGER NOT NULL,
    retire_at   INTEGER,
    drop_at     INTEGER
);
