-- Usage metered per calendar month (issue 13): conversations started. The
-- row is bumped in the same round trip as the conversation's INSERT, and
-- only while under the plan's limit.
CREATE TABLE usage (
    month         date NOT NULL,
    conversations integer NOT NULL DEFAULT 0,
    CONSTRAINT usage_pkey PRIMARY KEY (month)
);
-- What the widget says when the plan's month is used up or the
-- subscription has lapsed: the owner's own words. Two statements with a
-- named constraint, for Citus.
ALTER TABLE bot_config ADD COLUMN unavailable_reply text NOT NULL DEFAULT 'Sorry, our chat assistant is not available right now. Please reach us another way, or try again later.';
ALTER TABLE bot_config ADD CONSTRAINT bot_config_unavailable_reply_length CHECK (length(unavailable_reply) BETWEEN 1 AND 1000);
