"""Remediation history in PostgreSQL: runs, steps, undo journal, outcomes, alert decisions."""

from kubernaut.history.store import DEFAULT_CONN_ID, History, HistoryUnavailable, JournalEntry

__all__ = ["DEFAULT_CONN_ID", "History", "HistoryUnavailable", "JournalEntry"]
