"""headwater-dupname: uses the entry-point name ``testplugin``, like headwater-testplugin."""
