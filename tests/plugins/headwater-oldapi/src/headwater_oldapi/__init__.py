"""headwater-oldapi: a plugin written for another plugin API version."""
