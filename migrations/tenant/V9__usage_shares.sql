-- The month's count split over a few rows (issue 13): every group of a busy
-- billed tenant bumped one row, so each group waited for the previous one's
-- COMMIT. Each writer now counts on a row of its own (`shard`), within a
-- share of the limit (`cap`) handed out, with every row of the month
-- locked, against the limit in `cap_limit`. The month's count is the sum
-- of its rows; `warned_at` is kept on row 0. Existing months become row 0,
-- with no share yet (the first count hands them out). Named constraints,
-- one change a statement, for Citus.
ALTER TABLE usage ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN cap integer;
ALTER TABLE usage ADD COLUMN cap_limit integer;
ALTER TABLE usage DROP CONSTRAINT usage_pkey;
ALTER TABLE usage ADD CONSTRAINT usage_pkey PRIMARY KEY (month, shard);
