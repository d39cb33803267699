"""Benchmark: the Function App's cold start, as the Functions Python worker meets it.

    python benchmarks/cold_start.py            # 10 fresh processes per measure
    python benchmarks/cold_start.py --runs 20

Each run is a fresh interpreter (no warm module cache in memory; the .pyc files on disk are
used, as on a deployed app after its first start). Three figures per run:

  import     importing `function_app_entry` (what PYTHON_SCRIPT_FILE_NAME names)
  first      then answering the first HTTP request: the worker calls the indexed function
             `openapi_json` (GET /api/openapi.json, no database) with a func.HttpRequest
  process    the whole child process, interpreter start-up included, seen from outside

with `import_cpu` and `first_cpu` the same two spans in CPU time of the process: on a
shared machine the wall times include waiting for a core, the CPU times much less so. Then
the median, min and max of each. Local mode (DT_LOCAL_MODE=1), so no secrets are needed;
no database is touched. `--importtime` prints the modules that dominate one import instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, json, time
started, cpu_started = time.perf_counter(), time.process_time()
import function_app_entry
imported, cpu_imported = time.perf_counter(), time.process_time()
import azure.functions as func
(function,) = [
    f for f in function_app_entry.app.get_functions() if f.get_function_name() == "openapi_json"
]
request = func.HttpRequest(
    method="GET", url="http://127.0.0.1:7071/api/openapi.json", headers={}, body=b""
)
response = asyncio.run(function.get_user_function()(request))
answered, cpu_answered = time.perf_counter(), time.process_time()
assert response.status_code == 200, response.status_code
print(json.dumps({
    "import": imported - started,
    "first": answered - started,
    "import_cpu": cpu_imported - cpu_started,
    "first_cpu": cpu_answered - cpu_started,
}))
"""


def child_env() -> dict[str, str]:
    return {**os.environ, "DT_LOCAL_MODE": "1", "PYTHONPATH": str(REPO)}


def one_run() -> dict[str, float]:
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    process = time.perf_counter() - began
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "process": process}


def import_profile(top: int) -> None:
    """The modules with the largest cumulative import time, from `python -X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app_entry"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(cumulative), int(own), name.rstrip()))
    for cumulative, own, name in sorted(rows, reverse=True)[:top]:
        print(f"{cumulative / 1000:8.0f} ms  (self {own / 1000:6.0f} ms)  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--importtime", type=int, metavar="N", help="print the N slowest imports")
    args = parser.parse_args()
    if args.importtime:
        import_profile(args.importtime)
        return
    one_run()  # warm the .pyc files and the page cache, as a deployed app's second start
    runs = [one_run() for _ in range(args.runs)]
    print(f"{args.runs} fresh processes, Python {sys.version.split()[0]}")
    for key in ("import", "first", "process", "import_cpu", "first_cpu"):
        values = [run[key] for run in runs]
        print(
            f"  {key:10} median {statistics.median(values):6.3f} s   "
            f"min {min(values):6.3f} s   max {max(values):6.3f} s"
        )


if __name__ == "__main__":
    main()
