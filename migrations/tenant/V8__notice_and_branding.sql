-- The owner's notice at billing.warn_percent of the month's conversations
-- (issue 13): when it was mailed for that month. The crossing chat claims
-- it (NULL to now) before the mail goes, so a restart or a second server
-- never mails twice; a mail that fails sets it back, and a later chat
-- tries again.
ALTER TABLE usage ADD COLUMN warned_at timestamptz;
-- Whether the widget shows "Powered by Chatter". The owner may turn it off
-- only on a plan that allows it (`remove_branding`), and a plan that does
-- not shows it whatever this says.
ALTER TABLE bot_config ADD COLUMN show_branding boolean NOT NULL DEFAULT true;
