"""Outgoing mail: an outbox written in the event's transaction, delivered by a job."""
