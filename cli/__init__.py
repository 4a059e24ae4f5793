"""The `nnsvc` command line."""
