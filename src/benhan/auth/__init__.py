"""Authentication: accounts and passwords, page sessions, OAuth 2 clients, tokens and keys."""
