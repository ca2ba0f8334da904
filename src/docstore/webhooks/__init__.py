"""Webhooks: signed HTTP deliveries of the change feed to a URL, by the worker."""
