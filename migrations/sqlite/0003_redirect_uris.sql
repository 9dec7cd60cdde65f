-- Redirect URIs a client registered for the authorization_code grant, space-separated
-- (a redirect URI never contains whitespace); matched exactly.
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
