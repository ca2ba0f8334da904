"""The admin console: accounts, storage, maintenance and audit, for administrators."""
