"""Imported last by the ProcessExecutor's forkserver, before any worker forks from it.

- It imports the flow's main script once, as the forkserver's ``'__main__'`` preload means
  to: CPython 3.11's forkserver looks for a ``main_path`` key that its preparation data never
  has, so without this every worker ran the main script (and imported what it imports) again.
  The path, ``sys.argv``, ``sys.path`` and the working directory it needs come in
  ``_HEADWATER_FORKSERVER_MAIN`` (set only while the server starts); if importing it fails,
  each worker imports it as before.
- ``gc.freeze()`` then moves every object the server holds into the permanent generation, so a
  worker's garbage collections never walk (and copy-on-write) the pages they live on.
"""

import gc
import os

_main = os.environ.pop("_HEADWATER_FORKSERVER_MAIN", None)
if _main:
    import json
    import sys
    from multiprocessing import process, spawn

    _data = json.loads(_main)
    sys.argv, sys.path = _data["sys_argv"], _data["sys_path"]  # as each worker's spawn.prepare() sets them
    process.current_process()._inheriting = True  # type: ignore[attr-defined]
    try:
        os.chdir(_data["dir"])
        spawn.import_main_path(_data["main_path"])
    except BaseException:  # noqa: BLE001, S110 - as without the preload: each worker imports the script itself
        pass
    finally:
        del process.current_process()._inheriting  # type: ignore[attr-defined]

gc.freeze()
