-- Revocation of standalone-mode tokens. Every token carries its user's token_generation at
-- issue; a password change or disabling the user increments it, so earlier tokens stop
-- working. A disabled user can neither log in nor use a token until enabled again.
ALTER TABLE api_users
    ADD COLUMN disabled          boolean NOT NULL DEFAULT false,
    ADD COLUMN token_generation  integer NOT NULL DEFAULT 0;
