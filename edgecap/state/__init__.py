"""Files in the state directory: SQLite helpers, file checks, storage health."""
