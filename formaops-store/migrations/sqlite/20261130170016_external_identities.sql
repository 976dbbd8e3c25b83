-- Users signed in with a JWT of a trusted issuer (Supabase Auth, OIDC): one FormaOps user per
-- (issuer, subject). `email` is the token's email claim when the identity was first seen.
CREATE TABLE external_identities (
    issuer     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_user_idx ON external_identities (user_id);
