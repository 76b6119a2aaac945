-- The vector of a visitor's question the bot could not answer (issue 12),
-- kept by the chat path, which embeds the question anyway, so grouping
-- the unanswered questions reads vectors instead of embedding up to 500
-- questions on every view. Half-precision floats, little-endian (768
-- bytes for MiniLM's 384 dimensions); `embedding_model` names the model
-- that made them: a vector of another model is re-made. NULL for answered
-- questions, bot messages and rows older than this migration (embedded and
-- filled in when first grouped). One ALTER per statement (Citus).
ALTER TABLE messages ADD COLUMN embedding bytea;
ALTER TABLE messages ADD COLUMN embedding_model text;
