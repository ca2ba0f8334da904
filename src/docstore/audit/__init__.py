"""The audit log: entries, the seal chain, queries, export (jobs in tasks.py)."""
