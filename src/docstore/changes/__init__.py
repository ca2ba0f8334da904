"""The change feed: a transactional outbox of what each user can see change (issue 24)."""
