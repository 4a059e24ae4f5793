"""The HTTP surface: one router per resource under /v1, shared dependencies in `deps`."""
