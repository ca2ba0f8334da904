"""Two-way sync of a local folder with a docstore folder (`docstore sync`).

state (SQLite base) + scan (local tree) + the server (feed or listing) → plan (pure,
three-way) → engine (executes, keeping every byte; before the plan, clashes renames a file
and a folder under one name apart; after the files, folders syncs the empty folders) ;
watch loops it on events.
"""

from docstore.client.sync.engine import USER_AGENT, Syncer
from docstore.client.sync.report import Report, SyncError
from docstore.client.sync.state import state_summary

__all__ = ["USER_AGENT", "Report", "SyncError", "Syncer", "state_summary"]
