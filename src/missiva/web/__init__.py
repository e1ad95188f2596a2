"""HTTP plumbing shared by every router: sessions, authentication, errors, idempotency."""
