"""Small helpers shared by the core's modules (not public API)."""
