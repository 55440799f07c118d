-- Each tenant is one issuer, named by its slug in the URL path /t/{slug}.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
