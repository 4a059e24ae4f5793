"""The database of record: typed SQLAlchemy 2 models and engine/session construction."""
