-- gatehouse schema (SQLite).

-- Key/value facts about the whole policy: its id and the generation counter that tells every
-- gatehouse process when to reload its in-memory snapshot.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('generation', '0'), ('policy_id', 'gatehouse-rbac-v1');

CREATE TABLE resources (
    id          TEXT PRIMARY KEY NOT NULL,
    type        TEXT NOT NULL,
    name        TEXT NOT NULL,
    action      TEXT NOT NULL,
    url         TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    UNIQUE (type, name, action, url)
);

CREATE TABLE roles (
    id          TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT ''
);

CREATE TABLE role_resources (
    role_id     TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    resource_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, resource_id)
);
CREATE INDEX role_resources_by_resource ON role_resources (resource_id, role_id);

-- Client secrets are stored only as HMAC-SHA-256 digests keyed with the client id.
CREATE TABLE clients (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash BLOB,
    grant_types TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0,
    CHECK ((kind = 'confidential') = (secret_hash IS NOT NULL))
);

-- Passwords are stored only as argon2id PHC strings.
CREATE TABLE accounts (
    username      TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE subject_grants (
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('account', 'client')),
    subject_id   TEXT NOT NULL,
    role_id      TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (subject_kind, subject_id, role_id)
);

-- The permission version every token carries. Rows outlive their subject, so that a subject
-- re-created under the same name never honours tokens minted for its predecessor.
CREATE TABLE permission_versions (
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('account', 'client')),
    subject_id   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    fingerprint  BLOB NOT NULL,
    PRIMARY KEY (subject_kind, subject_id)
);
