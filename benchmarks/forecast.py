"""Benchmark: an ARIMA forecast of 10 series of 60 days of hourly data through the Durable
orchestration, with and without cross-validation.

    python benchmarks/forecast.py                 # starts its own local host (embedded DB)
    python benchmarks/forecast.py --api http://127.0.0.1:7071/api --data-dir .dtbase-local

For each run it prints the wall time from POST /api/forecast/arima to the instance's
"Completed" (status polled every 0.2 s), the time spent inside statsmodels (summed over
the activities, from their own timings), the activities' total time, and the share of the
wall time not spent fitting: 1 - (SARIMAX seconds / workers) / wall. That share is then
split over where the workers' time went (wall x workers = SARIMAX + the rest of the
activities + workers idle between the first activity's start and the last one's end +
the time before and after the activities: starter, set-up, scheduling, history).

With --direct it also runs the same ten fits in a process pool of the same size (no HTTP,
no database, no Durable). On a shared machine the fits themselves vary by tens of
percent from run to run, so compare shares rather than seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERIES = 10
DAYS = 60


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def synthetic(index: int, end: datetime, days: int) -> tuple[list[datetime], list[float]]:
    """A daily cycle with noise, a few minutes after each hour, ending at `end`."""
    import numpy as np

    rng = np.random.default_rng(index)
    hours = [end - timedelta(hours=h) for h in range(24 * days - 1, -1, -1)]
    stamps = [t + timedelta(minutes=int(rng.integers(0, 5))) for t in hours]
    values = [
        float(
            18
            + index
            + 5 * math.sin(2 * math.pi * (t.hour - 9) / 24)
            + (2 if t.weekday() >= 5 else 0)
            + rng.normal(0, 0.5)
        )
        for t in hours
    ]
    return stamps, values


def direct_fit(args: tuple[int, datetime, int, bool]) -> dict[str, float]:
    """One series through the same pipeline, in-process: clean, prepare, fit, forecast."""
    index, end, days, perform_cv = args
    from dtbase_core.client import Reading
    from dtbase_core.forecasting import arima, data
    from dtbase_core.forecasting.config import ArimaConfig

    started = time.perf_counter()
    cfg = ArimaConfig.model_validate({"arima": {"perform_cv": perform_cv}})
    stamps, values = synthetic(index, end, days)
    raw = data.to_series([Reading(v, t) for t, v in zip(stamps, values, strict=True)], "x")
    cleaned = data.clean(raw, mins_from_the_hour=15, step=cfg.data.step)
    prepared, _ = data.prepare(
        cleaned, cycle_start=cfg.others.cycle_start, days_interval=30, weekly_seasonality=True
    )
    result = arima.pipeline(prepared, cfg.arima, cfg.data.step)
    return {"fit": result.fit_seconds, "total": time.perf_counter() - started}


@dataclass
class Host:
    api: str
    password: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def start_host(data_dir: Path) -> Host:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    password = "bench-" + uuid.uuid4().hex[:12]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DT_")}
    env.update(
        {
            "DT_DEFAULT_USER_PASS": password,
            "DT_JWT_SECRET_KEY": "bench-" + "x" * 40,
            "XDG_RUNTIME_DIR": str(data_dir),
            "DT_FORECAST_SCHEDULE": "0 0 0 1 1 *",  # the daily forecast: not now
        }
    )
    log = (data_dir / "host.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "local.cli", "--port", str(port), "--data-dir", str(data_dir),
         "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    host = Host(f"http://127.0.0.1:{port}/api", password, process)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"benchmark: the host exited; see {data_dir / 'host.log'}")
        try:
            if httpx.get(host.api + "/health", timeout=2).status_code == 200:
                return host
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    host.stop()
    sys.exit("benchmark: the host did not start")


def seed(client: httpx.Client, prefix: str, end: datetime, days: int) -> list[str]:
    client.post(
        "/sensor/insert-sensor-type",
        json={
            "name": "Benchmark climate",
            "measures": [{"name": "Temperature", "units": "Degrees C", "datatype": "float"}],
        },
    )  # 409 on a second run: fine
    sensors = [f"{prefix}-{i}" for i in range(SERIES)]
    series = []
    for i, sensor in enumerate(sensors):
        reply = client.post(
            "/sensor/insert-sensor",
            json={"type_name": "Benchmark climate", "unique_identifier": sensor},
        )
        reply.raise_for_status()
        stamps, values = synthetic(i, end, days)
        series.append(
            {
                "unique_identifier": sensor,
                "measure_name": "Temperature",
                "readings": values,
                "timestamps": [_iso(t) for t in stamps],
            }
        )
    client.post("/sensor/insert-readings-bulk", json={"series": series}).raise_for_status()
    return sensors


def tail(timings: list[dict[str, float]]) -> float:
    """Seconds from the last moment all the busiest concurrency was in use (after it,
    there is no work left to start: the last series finish with workers idle) to the end."""
    events = sorted([(t["started"], 1) for t in timings] + [(t["finished"], -1) for t in timings])
    running = busiest = 0
    for _, change in events:
        running += change
        busiest = max(busiest, running)
    running, dropped = 0, events[0][0]
    for moment, change in events:
        if change < 0 and running == busiest:
            dropped = moment
        running += change
    return events[-1][0] - dropped


def orchestrated(
    client: httpx.Client, sensors: list[str], end: datetime, days: int, perform_cv: bool
) -> dict[str, Any]:
    predict_from = _iso(end + timedelta(minutes=10))
    body = {
        "arima": {"perform_cv": perform_cv},
        "data": {"num_days_training": days, "predict_from_datetime": predict_from},
        "sensors": {"include_sensors": sensors, "include_measures": [["Temperature", "Degrees C"]]},
    }
    started = time.perf_counter()
    reply = client.post("/forecast/arima", json=body)
    reply.raise_for_status()
    status_url = reply.json()["statusQueryGetUri"]
    while True:
        status = client.get(status_url).json()
        if status["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            break
        time.sleep(0.2)
    wall = time.perf_counter() - started
    if status["runtimeStatus"] != "Completed":
        sys.exit(f"benchmark: the forecast ended {status['runtimeStatus']}: {status['output']}")
    series = status["output"]["series"]
    timings = [s["timings"] for s in series]
    return {
        "wall": wall,
        "fit": sum(t["fit_seconds"] for t in timings),
        "activities": sum(t["total_seconds"] for t in timings),
        "read": sum(t["read_seconds"] for t in timings),
        "store": sum(t["store_seconds"] for t in timings),
        "span": max(t["finished"] for t in timings) - min(t["started"] for t in timings),
        "tail": tail(timings),
        "rmse": [s["metrics"].get("RMSE") for s in series],
        "fallbacks": [s["metrics"]["fallback"] for s in series if s["metrics"].get("fallback")],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", help="a running host's API (default: start one)")
    parser.add_argument("--data-dir", type=Path, default=Path(".dtbase-local"))
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--direct", action="store_true", help="also a direct process pool")
    args = parser.parse_args()

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    own_dir = None
    if args.api:
        secrets = args.data_dir / "local-secrets.json"
        password = os.environ.get("DT_DEFAULT_USER_PASS") or (
            json.loads(secrets.read_text())["DT_DEFAULT_USER_PASS"] if secrets.exists() else ""
        )
        host = Host(args.api, password)
    else:
        own_dir = tempfile.mkdtemp(prefix="dtbase-bench-")
        os.chmod(own_dir, 0o755)
        print(f"starting a local host in {own_dir} ...", flush=True)
        host = start_host(Path(own_dir))
    try:
        client = httpx.Client(base_url=host.api, timeout=600)
        reply = client.post(
            "/auth/login", json={"email": "default_user@localhost", "password": host.password}
        )
        reply.raise_for_status()
        client.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
        end = datetime.now(UTC).replace(hour=16, minute=0, second=0, microsecond=0)
        if end > datetime.now(UTC):
            end -= timedelta(days=1)
        sensors = seed(client, f"bench-{uuid.uuid4().hex[:6]}", end, args.days)
        print(
            f"{SERIES} series x {args.days} days hourly ({24 * args.days} readings each), "
            f"{args.workers} workers, load average {os.getloadavg()[0]:.2f}\n",
            flush=True,
        )
        header = f"{'':28}{'wall s':>8}{'SARIMAX s':>11}{'activities s':>14}{'outside fit':>13}"
        print(header)
        for perform_cv in (False, True):
            label = "with CV" if perform_cv else "without CV"
            run = orchestrated(client, sensors, end, args.days, perform_cv)
            outside = 1 - (run["fit"] / args.workers) / run["wall"]
            print(
                f"{'orchestrated, ' + label:28}{run['wall']:8.1f}{run['fit']:11.1f}"
                f"{run['activities']:14.1f}{outside:13.1%}",
                flush=True,
            )
            capacity = run["wall"] * args.workers
            in_activities = run["activities"] - run["fit"]
            idle = run["span"] * args.workers - run["activities"]
            around = (run["wall"] - run["span"]) * args.workers
            print(
                f"{'':28}of wall x workers: activities outside SARIMAX "
                f"{in_activities / capacity:.1%} (read {run['read']:.2f} s, store "
                f"{run['store']:.2f} s), workers idle between activities "
                f"{idle / capacity:.1%} (the last {run['tail']:.1f} s with work for fewer "
                f"than all), before the first and after the last "
                f"{around / capacity:.1%} ({run['wall'] - run['span']:.1f} s); fallback fits "
                f"{len(run['fallbacks'])} of {SERIES} {sorted(set(run['fallbacks'])) or ''}",
                flush=True,
            )
            if args.direct:
                started = time.perf_counter()
                with ProcessPoolExecutor(args.workers) as pool:
                    direct = list(
                        pool.map(
                            direct_fit,
                            [(i, end, args.days, perform_cv) for i in range(SERIES)],
                        )
                    )
                wall = time.perf_counter() - started
                fit = sum(d["fit"] for d in direct)
                total = sum(d["total"] for d in direct)
                outside = 1 - (fit / args.workers) / wall
                print(
                    f"{'direct pool, ' + label:28}{wall:8.1f}{fit:11.1f}{total:14.1f}"
                    f"{outside:13.1%}",
                    flush=True,
                )
                print(f"{'':28}orchestration's own cost: {run['wall'] - wall:+.1f} s\n")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
