-- The tenant's learned matcher (issue 14), kept so that an index rebuilt
-- after a restart or an eviction from the index cache loads it instead of
-- training again. One row: the head's weights (`classes` rows of `dim + 1`
-- half-precision floats, little-endian), the model that made the vectors
-- it was trained on, and a SHA-256 fingerprint of the FAQs and phrasings
-- (and the fit's settings) it was trained on. A row whose model id or
-- fingerprint does not match today's FAQs is not used: the chat keeps the
-- nearest-phrasing rule and the head is trained again in the background.
-- Not carried by backups: made again on the first question after a restore.
-- Named constraints and a primary key (Citus, online moves).
CREATE TABLE matcher_weights (
    id smallint NOT NULL DEFAULT 1,
    model_id text NOT NULL,
    fingerprint bytea NOT NULL,
    classes integer NOT NULL,
    dim integer NOT NULL,
    weights bytea NOT NULL,
    trained_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT matcher_weights_pkey PRIMARY KEY (id),
    CONSTRAINT matcher_weights_one_row CHECK (id = 1)
);
