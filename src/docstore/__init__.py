"""docstore: self-hosted document storage and sharing."""

__version__ = "0.1.0"
