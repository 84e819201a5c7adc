"""Integration test helpers (see mailpipe.py)."""
