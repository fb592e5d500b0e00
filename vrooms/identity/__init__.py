"""Identity: the ACS Identity REST API (users, access tokens, revocation)."""
