"""GitHub and Git storage figures: cold and warm flow loads, concurrent runs of one commit, location hashing.

    python benchmarks/github.py [--files 200] [--repeats 5] [--concurrent 20]

Everything is local: a real git repository with ``--files`` helper files (about 2 kB each), the
tests' GitHub REST server (tests/github/github_helpers.py) on 127.0.0.1 and ``file://`` for Git.

* cold load: resolve the ref, download the commit (tarball / shallow fetch), unpack, run the flow file;
* warm load: resolve the ref, find the commit in the cache, run the flow file;
* concurrent: ``--concurrent`` threads ask for one new commit at once; downloads counted;
* location: ``location_for`` of a flow loaded from a checkout (hashing flow, helpers, flow file).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "github"))

FLOW = '''
from headwater import Flow, task
from pkg.helper_0 import VALUE


@task
def value():
    return VALUE


with Flow("bench") as flow:
    value()
'''


def _median_ms(call: Callable[[], object], repeats: int, setup: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=20)
    args = parser.parse_args(argv)

    from github_helpers import FakeGitHub, Repo
    from headwater.plugins import load_flows_from_file
    from headwater_github import Git, GitHub
    from headwater_github.cache import release_held

    rows: list[tuple[str, str]] = []
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ["HEADWATER_HOME"] = str(base / "home")
        repo = Repo(base, "bench")
        files = {"flows/bench.py": FLOW, "flows/pkg/__init__.py": ""}
        files.update({f"flows/pkg/helper_{i}.py": f"VALUE = {i}\n" + "# padding\n" * 200 for i in range(args.files)})
        repo.commit(files)
        flow = load_flows_from_file(repo.work / "flows" / "bench.py")["bench"]
        with FakeGitHub({"org/bench": repo.origin}) as server:
            storages = {
                "GitHub": GitHub(repo="org/bench", path="flows/bench.py", ref="main", base_url=server.url),
                "Git file://": Git(repo=repo.origin.as_uri(), flow_path="flows/bench.py", branch_name="main"),
            }
            counter = [0]
            for label, storage in storages.items():
                location = storage.add_flow(flow)

                def fresh_cache(counter: list[int] = counter) -> None:
                    release_held()
                    counter[0] += 1
                    os.environ["HEADWATER__GITHUB__CACHE_DIR"] = str(base / f"cache-{counter[0]}")

                load = functools.partial(storage.get_flow, location)
                cold = _median_ms(load, args.repeats, fresh_cache)
                warm = _median_ms(load, args.repeats)
                rows.append((f"{label}: cold load ({args.files} files), median ms", f"{cold:.1f}"))
                rows.append((f"{label}: warm load (cached commit), median ms", f"{warm:.1f}"))
            os.chdir(cwd)
            release_held()
            os.environ["HEADWATER__GITHUB__CACHE_DIR"] = str(base / "cache-concurrent")
            github = storages["GitHub"]
            sha = github.resolve_commit()
            before = server.count("/tarball/")
            threads = [threading.Thread(target=github.tree, args=(sha,)) for _ in range(args.concurrent)]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = (time.perf_counter() - start) * 1000
            rows.append((f"GitHub: {args.concurrent} concurrent runs of a new commit, ms", f"{elapsed:.1f}"))
            rows.append((f"GitHub: downloads for those {args.concurrent} runs", str(server.count("/tarball/") - before)))
            os.chdir(repo.work)
            fresh = GitHub(repo="org/bench", path="flows/bench.py", ref="main", base_url=server.url)
            loc_ms = _median_ms(lambda: fresh.location_for(flow), args.repeats)
            rows.append(("location_for (flow + helpers + flow file), median ms", f"{loc_ms:.2f}"))
            os.chdir(cwd)
            release_held()
    os.environ.pop("HEADWATER__GITHUB__CACHE_DIR", None)
    width = max(len(name) for name, _ in rows)
    print(f"{'figure'.ljust(width)} | value")
    print(f"{'-' * width}-|------")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")
    return rows


if __name__ == "__main__":
    main()
