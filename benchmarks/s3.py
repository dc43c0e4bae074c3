"""S3Result figures against plain boto3: 1 000 small results and one 200 MB result, time and peak RSS.

    python benchmarks/s3.py [--small-n 1000] [--large-mb 200] [--repeat 1] [--only small|large] [--json]

moto's S3 server runs as its own process on 127.0.0.1 (so its memory is not counted). Each
measurement runs in a fresh Python process, which reports its wall time and its peak resident
set size (``ru_maxrss``), so the figures of one side never include the other's allocations:

* headwater: ``S3Result(bucket, location="bench/{task_name}.pkl").write(value, task_name=...)``
  and ``.read(location)`` (pickle serializer, s3fs, multipart above ``[s3] multipart_threshold``);
* boto3: the same bytes (``cloudpickle.dumps``) through ``put_object`` / ``get_object`` for small
  values and ``upload_fileobj`` / ``download_fileobj`` (TransferConfig with the same part size)
  for the large one, then ``pickle.loads``.

The ratio column is headwater / boto3 (target: at most 1.3 for time). The exit status is 0
when the run completed; timings are figures, not assertions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
PART = 16 * MiB
BUCKET = "bench"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _large_value(mb: int) -> bytes:
    return bytes(range(256)) * (mb * MiB // 256)


# --- one measurement (in a child process) ---------------------------------------------------


def measure(side: str, op: str, size: str, endpoint: str, n: int, large_mb: int) -> dict[str, float]:
    """Run one (side, op, size) measurement in this process; returns seconds and peak RSS (MB)."""
    import cloudpickle

    if side == "headwater":
        from headwater.results import S3Result

        result = S3Result(bucket=BUCKET, location="hw/{task_name}.pkl", boto3_kwargs={"endpoint_url": endpoint})
        result.exists("hw/warm-up.pkl")  # open the connection pool first, like boto3's client creation below
    else:
        import boto3
        from boto3.s3.transfer import TransferConfig

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.list_objects_v2(Bucket=BUCKET, MaxKeys=1)
        transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)
    names = [f"small-{i}" for i in range(n)] if size == "small" else ["large"]
    value: Any = {"id": 1, "rows": list(range(20)), "name": "a small result"} if size == "small" else None
    if size == "large" and op == "upload":
        value = _large_value(large_mb)
    baseline = _peak_mb()
    start = time.perf_counter()
    if side == "headwater":
        if op == "upload":
            for name in names:
                result.write(value, task_name=name)
        else:
            for name in names:
                got = result.read(f"s3://{BUCKET}/hw/{name}.pkl").value
    elif op == "upload":
        for name in names:
            data = cloudpickle.dumps(value)
            if size == "small":
                client.put_object(Bucket=BUCKET, Key=f"boto/{name}.pkl", Body=data)
            else:
                client.upload_fileobj(io.BytesIO(data), BUCKET, f"boto/{name}.pkl", Config=transfer)
    else:
        for name in names:
            if size == "small":
                got = pickle.loads(client.get_object(Bucket=BUCKET, Key=f"boto/{name}.pkl")["Body"].read())
            else:
                stream = io.BytesIO()
                client.download_fileobj(BUCKET, f"boto/{name}.pkl", stream, Config=transfer)
                got = pickle.loads(stream.getbuffer())
    seconds = time.perf_counter() - start
    if op == "download":
        expected = len(_large_value(large_mb)) if size == "large" else None
        assert (len(got) == expected) if size == "large" else got["rows"][-1] == 19
    return {"seconds": seconds, "peak_mb": _peak_mb(), "baseline_mb": baseline}


def _child(args: list[str], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                          timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measurement {args} failed:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- the moto server ----------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server as a child process on 127.0.0.1; returns it and its endpoint."""
    import urllib.request

    port = _free_port()
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
    code = "import sys; from moto.server import main; main(sys.argv[1:])"
    process = subprocess.Popen([sys.executable, "-c", code, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                               stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto's server exited: {(workdir / 'moto.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto's server did not answer within 60 s") from None
            time.sleep(0.1)
    return process, endpoint


# --- the table ------------------------------------------------------------------------------


def run(small_n: int, large_mb: int, repeat: int, only: str | None = None) -> list[dict[str, Any]]:
    """Every measurement, best of ``repeat`` for time (peak RSS of the same run)."""
    env = {**os.environ, **DUMMY_AWS, "HEADWATER__S3__MULTIPART_THRESHOLD": str(PART),
           "HEADWATER__S3__MULTIPART_CHUNKSIZE": str(PART)}
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        env.pop(name, None)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="headwater-s3-bench-") as tmp:
        env["HEADWATER_HOME"] = tmp
        server, endpoint = start_moto(Path(tmp), env)
        try:
            import boto3

            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                         aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
            sizes = [("small", f"{small_n} small results"), ("large", f"one {large_mb} MB result")]
            for size, label in [item for item in sizes if only in (None, item[0])]:
                for op in ("upload", "download"):
                    runs: dict[str, list[dict[str, float]]] = {"headwater": [], "boto3": []}
                    for _ in range(repeat):  # interleaved, so a busy moment of the machine hits both sides
                        for side in ("headwater", "boto3"):
                            runs[side].append(_child([side, op, size, endpoint, str(small_n), str(large_mb)], env))
                    figures = {side: min(r, key=lambda m: m["seconds"]) for side, r in runs.items()}
                    hw, bt = figures["headwater"], figures["boto3"]
                    rows.append({
                        "workload": label, "op": op,
                        "headwater_s": hw["seconds"], "boto3_s": bt["seconds"], "time_ratio": hw["seconds"] / bt["seconds"],
                        "headwater_rss_mb": hw["peak_mb"], "boto3_rss_mb": bt["peak_mb"],
                        "rss_ratio": hw["peak_mb"] / bt["peak_mb"],
                    })
        finally:
            server.kill()
            server.wait(15)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (f"{'workload':<22} {'op':<9} {'headwater s':>12} {'boto3 s':>9} {'ratio':>6} "
              f"{'hw peak RSS MB':>15} {'boto3 peak RSS MB':>18} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['workload']:<22} {r['op']:<9} {r['headwater_s']:>12.3f} {r['boto3_s']:>9.3f} {r['time_ratio']:>6.2f} "
              f"{r['headwater_rss_mb']:>15.0f} {r['boto3_rss_mb']:>18.0f} {r['rss_ratio']:>6.2f}")
    worst = max(r["time_ratio"] for r in rows)
    print(f"\nworst time ratio headwater/boto3: {worst:.2f} (target <= 1.3: {'met' if worst <= 1.3 else 'NOT met'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-n", type=int, default=1000, help="how many small results (default 1000)")
    parser.add_argument("--large-mb", type=int, default=200, help="size of the large result in MB (default 200)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest counts (default 1)")
    parser.add_argument("--only", choices=("small", "large"), help="measure only the small or the large results")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--child", nargs=6, metavar=("SIDE", "OP", "SIZE", "ENDPOINT", "N", "MB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, op, size, endpoint, n, mb = args.child
        print(json.dumps(measure(side, op, size, endpoint, int(n), int(mb))))
        return 0
    rows = run(args.small_n, args.large_mb, max(1, args.repeat), args.only)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
