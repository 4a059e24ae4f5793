"""Alembic scripts of the service's database; a package only so that the wheel ships them."""
