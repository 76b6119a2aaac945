-- Full-text search over messages for the client API's conversation search.
-- 'simple' config: no language-specific stemming, since tenants write in any language.
CREATE INDEX messages_text_search ON messages USING gin (to_tsvector('simple', text));
