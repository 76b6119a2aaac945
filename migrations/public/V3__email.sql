-- Sign-up and mail (issue 13): when an account proved it reads its address,
-- and the single-use links sent by mail. Only a link's SHA-256 is stored, as
-- for sign-in tokens: a leaked table opens no account.
ALTER TABLE public.users ADD COLUMN email_verified_at timestamptz;

CREATE TABLE public.email_tokens (
    token_sha256 bytea NOT NULL,
    user_id      bigint NOT NULL,
    purpose      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CONSTRAINT email_tokens_pkey PRIMARY KEY (token_sha256),
    CONSTRAINT email_tokens_user_fkey FOREIGN KEY (user_id)
        REFERENCES public.users (id) ON DELETE CASCADE,
    CONSTRAINT email_tokens_purpose_check CHECK (purpose IN ('verify', 'reset'))
);
CREATE INDEX email_tokens_user ON public.email_tokens (user_id);
