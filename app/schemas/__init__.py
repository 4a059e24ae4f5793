"""Pydantic v2 schemas of the HTTP contract, one module per resource, apart from the database models."""
