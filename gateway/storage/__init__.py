"""Storage of recordings: naming, index, retention, recovery, and the storage area."""
