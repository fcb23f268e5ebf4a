"""Storage adapter: SQLAlchemy Core over SQLite (embedded) or PostgreSQL."""
