-- A visitor's thumbs up or down on one bot answer, from the widget. One row
-- per answer: a second click changes it. Erasing a conversation erases its
-- feedback with its messages.
CREATE TABLE feedback (
    message_id bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    helpful    boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_recent ON feedback (updated_at);
