-- Redirect URIs a client registered for the authorization_code grant; matched exactly.
ALTER TABLE clients ADD COLUMN redirect_uris TEXT[] NOT NULL DEFAULT '{}';
