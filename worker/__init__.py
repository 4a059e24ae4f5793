"""Celery tasks that run `core` on CPU and GPU workers and report progress to the database."""
