"""headwater-conflict: registers the storage tag ``TestDir``, which headwater-testplugin registers too."""
