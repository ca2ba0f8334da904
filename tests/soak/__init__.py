"""The soak, short: mixed load on PostgreSQL + Redis + S3, then fsck (bench/soak.py)."""
