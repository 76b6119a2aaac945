-- One tenant's bot. Runs with search_path set to the tenant schema alone,
-- so every name here lands in that schema. No triggers (Citus): the
-- application sends its own NOTIFY.
CREATE TABLE bot_config (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    bot_name        text NOT NULL CHECK (length(bot_name) BETWEEN 1 AND 100),
    greeting        text NOT NULL DEFAULT 'Hi! Ask me anything about us.',
    fallback_reply  text NOT NULL DEFAULT 'Sorry, I don''t know that one yet. Could you rephrase, or ask something else?',
    match_threshold real NOT NULL DEFAULT 0.4 CHECK (match_threshold BETWEEN 0 AND 1),
    theme           jsonb NOT NULL DEFAULT '{"color": "#2563eb", "position": "right"}',
    allowed_origins text[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE faqs (
    id           bigserial PRIMARY KEY,
    question     text NOT NULL CHECK (length(question) BETWEEN 1 AND 2000),
    answer       text NOT NULL CHECK (length(answer) BETWEEN 1 AND 10000),
    alternatives text[] NOT NULL DEFAULT '{}',
    -- The vectors of the question, each alternative phrasing and the
    -- answer, flattened; NULL until embedded, re-made when model_id changes.
    embedding    real[],
    model_id     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE conversations (
    id              bigserial PRIMARY KEY,
    session_id      text NOT NULL UNIQUE,
    origin          text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_latest ON conversations (last_message_at DESC);

CREATE TABLE messages (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('visitor', 'bot')),
    text            text NOT NULL,
    faq_id          bigint REFERENCES faqs (id) ON DELETE SET NULL,
    score           real,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
