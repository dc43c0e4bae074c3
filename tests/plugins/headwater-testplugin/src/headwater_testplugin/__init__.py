"""headwater-testplugin: a plugin the test suite builds and loads through its entry point.

Importing this package (or ``plugin``) is light; ``heavy`` holds the classes and is only
imported when a registry entry is resolved.
"""
