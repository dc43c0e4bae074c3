"""Raises on import, like a plugin whose dependency is missing or broken."""

raise RuntimeError("headwater-brokenplugin is broken on purpose (tests of the plugin loader)")
