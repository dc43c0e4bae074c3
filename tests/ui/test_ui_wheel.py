"""The UI ships in the wheel: templates and static files are package data, and pages render from the installed copy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.testing.distributions import install_distributions

REPO = Path(__file__).resolve().parents[2]
SCRIPT = r'''
import sys, tempfile, httpx
from pathlib import Path
import headwater_cloud_api
assert headwater_cloud_api.__file__.startswith(sys.argv[1]), headwater_cloud_api.__file__
from headwater_cloud_api.server.run import ServerThread
with ServerThread(database_url=f"sqlite:///{Path(tempfile.mkdtemp()) / 'a.db'}", scheduler=False, reaper=False) as srv:
    for path in ("/ui/", "/ui/flows", "/ui/agents", "/ui/static/app.js", "/ui/static/states.css"):
        r = httpx.get(srv.url + path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    assert "No agents" in httpx.get(srv.url + "/ui/").text
    assert "GraphQL explorer" in httpx.get(srv.api, headers={"Accept": "text/html"}).text
print("ok")
'''


@pytest.mark.slow
def test_installed_wheel_serves_the_ui(tmp_path: Path) -> None:
    site = install_distributions({"cloud": REPO / "plugins" / "cloud-api"}, tmp_path)["cloud"]
    package = site / "headwater_cloud_api" / "ui"
    assert (package / "templates" / "flow_run.html").exists() and (package / "static" / "app.js").exists()
    assert (package / "static" / "graphiql.js").exists() and (package / "templates" / "graphiql.html").exists()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), "HEADWATER_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(site)], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr
