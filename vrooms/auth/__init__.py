"""Authentication (HMAC for the server APIs, JWT access tokens for users) and the role table."""
