"""The per-commit cache: concurrent runs download once, the size limit evicts the oldest commits, trees in use stay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from github_helpers import FakeGitHub, Repo
from headwater.plugins import load_flows_from_file
from headwater_github import GitHub
from headwater_github.cache import CommitCache, release_held

FILES = {
    "flows/app.py": 'from headwater import Flow, task\nfrom lib import VALUE\n\n'
                    '@task\ndef value():\n    return VALUE\n\nwith Flow("cached") as flow:\n    value()\n',
    "flows/lib.py": "VALUE = 1\n",
    "flows/blob.bin": "x" * 200_000,
}


def _store(fake_github: FakeGitHub, repo: Repo) -> GitHub:
    return GitHub(repo=f"org/{repo.name}", path="flows/app.py", ref="main", base_url=fake_github.url)


RUN = """
import json, sys
from headwater.plugins import from_dict
storage = from_dict(json.loads(sys.argv[1]), "storage")
state = storage.get_flow(storage.flows["cached"]).run(run_on_schedule=False)
print("RESULT", next(iter(state.result.values())).result, storage.last_commit)
"""


@pytest.mark.slow
def test_twenty_concurrent_runs_download_once(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit(FILES)
    store = _store(fake_github, repo)
    store.add_flow(load_flows_from_file(repo.work / "flows/app.py")["cached"])
    data = json.dumps(store.serialize())
    processes = [subprocess.Popen([sys.executable, "-c", RUN, data], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=dict(os.environ)) for _ in range(10)]
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(store.tree(sha))) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outputs = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert all(f"RESULT 1 {sha}" in out for out, _ in outputs), outputs
    assert len(set(results)) == 1 and (results[0] / "flows/lib.py").read_text() == "VALUE = 1\n"
    assert fake_github.count("/tarball/") == 1, "twenty concurrent runs of one commit must download it once"


def test_the_oldest_commits_are_evicted_past_the_size_limit(fake_github: FakeGitHub, repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__GITHUB__CACHE_MAX_MB", "0.5")  # room for two commits of ~200 kB
    store = _store(fake_github, repo)
    shas = []
    for i in range(4):
        shas.append(repo.commit({**FILES, "flows/lib.py": f"VALUE = {i}\n"}))
        store.tree(shas[-1])
        release_held()  # as if each run's process had ended
    cache = store.cache()
    kept = [sha for _, _, _, sha in cache.entries()]
    assert kept == shas[2:], kept
    assert cache.size() <= 0.5 * 1024 * 1024
    assert not any((p / sha).exists() for p in cache.root.iterdir() for sha in shas[:2])


def test_a_tree_in_use_by_another_process_is_not_evicted(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit(FILES)
    store = _store(fake_github, repo)
    store.add_flow(load_flows_from_file(repo.work / "flows/app.py")["cached"])
    tree = store.tree(sha)
    release_held()
    holder = subprocess.Popen(
        [sys.executable, "-c", RUN + "\nprint('READY', flush=True)\nsys.stdin.read()\n", json.dumps(store.serialize())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        for line in holder.stdout:
            if line.startswith("READY"):
                break
        cache = CommitCache(store.cache().root, max_bytes=0)
        assert cache.evict() == []  # the running flow holds a shared lock
        assert tree.is_dir()
    finally:
        holder.communicate("", timeout=60)
    assert CommitCache(store.cache().root, max_bytes=0).evict() != []
    assert not tree.exists()


def test_a_half_written_tree_is_downloaded_again(fake_github: FakeGitHub, repo: Repo) -> None:
    sha = repo.commit(FILES)
    store = _store(fake_github, repo)
    tree = store.tree(sha)
    release_held()
    marker = tree.parent / f"{sha}.json"
    marker.unlink()  # as if the downloading process died before finishing
    (tree / "flows/lib.py").write_text("broken")
    again = store.tree(sha)
    assert (again / "flows/lib.py").read_text() == "VALUE = 1\n" and marker.exists()
    assert fake_github.count("/tarball/") == 2
