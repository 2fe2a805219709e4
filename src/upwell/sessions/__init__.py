"""Upload sessions: what a resumed upload needs, persisted atomically (JSON files or SQLite)."""
