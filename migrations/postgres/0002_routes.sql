-- The route table: host and path templates → resource type and name, for meshes that cannot
-- set per-route context_extensions (Istio CUSTOM). Tried in position order.
-- Mirrors migrations/sqlite/0002_routes.sql.
CREATE TABLE routes (
    position BIGINT PRIMARY KEY,
    host     TEXT,
    path     TEXT NOT NULL,
    type     TEXT NOT NULL,
    name     TEXT
);
