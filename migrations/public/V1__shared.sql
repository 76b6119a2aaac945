-- Shared tables. Kept small and rarely written: on Citus they become
-- reference tables copied to every node.
CREATE TABLE public.tenants (
    id          bigserial PRIMARY KEY,
    schema_name text NOT NULL UNIQUE CHECK (schema_name ~ '^[a-z][a-z0-9_]{2,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    is_active   boolean NOT NULL DEFAULT true,
    is_public   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- At most one public tenant: the platform's own site and bot.
CREATE UNIQUE INDEX tenants_one_public ON public.tenants (is_public) WHERE is_public;

CREATE TABLE public.domains (
    id         bigserial PRIMARY KEY,
    domain     text NOT NULL UNIQUE CHECK (domain = lower(domain) AND length(domain) BETWEEN 1 AND 253),
    tenant_id  bigint NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    is_primary boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX domains_one_primary ON public.domains (tenant_id) WHERE is_primary;
CREATE INDEX domains_tenant ON public.domains (tenant_id);

CREATE TABLE public.users (
    id            bigserial PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email = lower(email)),
    password_hash text NOT NULL,
    is_operator   boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.memberships (
    user_id   bigint NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    tenant_id bigint NOT NULL REFERENCES public.tenants (id) ON DELETE CASCADE,
    role      text NOT NULL CHECK (role IN ('owner', 'agent')),
    PRIMARY KEY (user_id, tenant_id)
);

CREATE TABLE public.auth_tokens (
    token_sha256 bytea PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_tokens_user ON public.auth_tokens (user_id);
