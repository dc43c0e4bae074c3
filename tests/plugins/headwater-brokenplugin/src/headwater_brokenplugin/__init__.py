"""headwater-brokenplugin: its plugin module raises on import (the loader must survive it)."""
