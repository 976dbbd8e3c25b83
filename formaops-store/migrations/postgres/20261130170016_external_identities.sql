-- Users signed in with a JWT of a trusted issuer (Supabase Auth, OIDC): one FormaOps user per
-- (issuer, subject). `email` is the token's email claim when the identity was first seen.
CREATE TABLE external_identities (
    issuer     text        NOT NULL,
    subject    text        NOT NULL,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text,
    created_at timestamptz NOT NULL,
    CONSTRAINT external_identities_pkey PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_user_idx ON external_identities (user_id);
