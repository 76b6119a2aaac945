-- How cautious the bot is (issue 14): the calibrated probability that the
-- best FAQ is the one meant, below which the bot asks which of its likeliest
-- FAQs the visitor meant instead of answering. Used when the tenant has data
-- enough for a learned matcher; otherwise match_threshold alone decides.
-- Two statements with a named constraint: Citus refuses a column added
-- together with an unnamed CHECK.
ALTER TABLE bot_config ADD COLUMN caution real NOT NULL DEFAULT 0.5;
ALTER TABLE bot_config ADD CONSTRAINT bot_config_caution_range CHECK (caution BETWEEN 0 AND 1);
