-- The route table: host and path templates → resource type and name, for meshes that cannot
-- set per-route context_extensions (Istio CUSTOM). Tried in position order.
CREATE TABLE routes (
    position INTEGER PRIMARY KEY NOT NULL,
    host     TEXT,
    path     TEXT NOT NULL,
    type     TEXT NOT NULL,
    name     TEXT
);
