"""Two-way sync of a local folder with a docstore folder (`docstore sync`).

state (SQLite base) + scan (local tree) + the server (feed or listing) → plan (pure,
three-way) → engine (executes, keeping every byte) ; watch loops it on events.
"""

from docstore.client.sync.engine import USER_AGENT, Report, Syncer, SyncError
from docstore.client.sync.state import state_summary

__all__ = ["USER_AGENT", "Report", "SyncError", "Syncer", "state_summary"]
