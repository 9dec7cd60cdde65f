-- gatehouse schema (Postgres): the same tables and meaning as migrations/sqlite/0001_initial.sql,
-- with native types (BOOLEAN, BIGINT, BYTEA, TEXT[]).

-- Facts about the whole policy, in one row: its id and the generation counter that tells every
-- gatehouse process when to reload its in-memory snapshot. `apply` locks this row first, so
-- concurrent applies from several processes run one after the other.
CREATE TABLE meta (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    generation BIGINT NOT NULL,
    policy_id  TEXT NOT NULL
);
INSERT INTO meta (generation, policy_id) VALUES (0, 'gatehouse-rbac-v1');

CREATE TABLE resources (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    name        TEXT NOT NULL,
    action      TEXT NOT NULL,
    url         TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    UNIQUE (type, name, action, url)
);

CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT ''
);

-- The primary key (role_id, resource_id) serves the database-path question
-- "does one of this subject's roles hold one of these resources?".
CREATE TABLE role_resources (
    role_id     TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    resource_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, resource_id)
);
CREATE INDEX role_resources_by_resource ON role_resources (resource_id, role_id);

-- Client secrets are stored only as HMAC-SHA-256 digests keyed with the client id.
CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash BYTEA,
    grant_types TEXT[] NOT NULL,
    scopes      TEXT[] NOT NULL,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    CHECK ((kind = 'confidential') = (secret_hash IS NOT NULL))
);

-- Passwords are stored only as argon2id PHC strings.
CREATE TABLE accounts (
    username      TEXT PRIMARY KEY,
    password_hash TEXT,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE
);

-- The primary key leads with the subject, the first step of the database-path question.
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
    version      BIGINT NOT NULL,
    fingerprint  BYTEA NOT NULL,
    PRIMARY KEY (subject_kind, subject_id)
);
