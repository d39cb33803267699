"""Benchmark: the twin's latencies as its readings grow, 1 million to 100 million.

    python benchmarks/scale.py                                # 1M, 10M and 100M readings
    python benchmarks/scale.py --sizes 1000000 10000000      # a quicker run

Starts its own `dtbase-local` on a fresh database (embedded PostgreSQL, or the server, or
Citus coordinator, that DT_TEST_DATABASE_URL names), with 1,000 sensors of one float
measure and one threshold alert rule over all of them. A probe sensor holds a year of
one-minute readings (525,600) and each sensor its last hour from the start; the sensors'
one-minute histories then grow backwards in time, in blocks of 10,000 readings given to
the sensors in turn, until the tables hold each size. So the queries timed at each size do
the same work, and only the tables around them grow:

- ingest: the blocks added to reach the size, one a request (`insert-sensor-readings`), two
  requests in flight (readings/s);
- one week of the probe (10,080 readings) with `sensor-readings` (p50 and p95 of 50);
- `latest-readings` of every sensor (of 20);
- daily means of the probe over its year with `sensor-readings-aggregated` (of 30);
- an alert evaluation (`evaluate-alerts`) after each sensor's next minute is stored, as the
  timer's tick would find it (of 5).

Prints a table, and writes it with a plot of latency against size to `docs/scale-benchmark.md`
and `docs/scale-benchmark.png` (`--out` to write elsewhere, `--name` for other file names:
the README's Citus run is `--name scale-benchmark-citus`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import ADMIN_PASSWORD, Api, TestDatabase, start_host  # noqa: E402

MINUTE = timedelta(minutes=1)
YEAR_MINUTES = 365 * 24 * 60
BATCH = 10_000
END = datetime(2026, 1, 1, tzinfo=UTC)  # every history ends here; ticks go on from it
PROBE = "probe"
SEED = 60  # minutes of readings each sensor holds from the start


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _minutes(last: datetime, count: int) -> list[str]:
    """`count` one-minute timestamps ending at `last`, oldest first."""
    return [_iso(last - (count - 1 - i) * MINUTE) for i in range(count)]


@dataclass
class Step:
    size: int
    ingest_rate: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def p(self, name: str, q: float) -> float:
        values = sorted(self.latencies[name])
        return values[min(len(values) - 1, int(q * len(values)))] * 1000


# The goals at 100 million readings on the 2-core machine (p95), drawn dotted.
GOALS_MS = {"week": 30, "latest": 50, "daily": 20}
QUERIES = {
    "week": "1 week (10,080 readings)",
    "latest": "latest of every sensor",
    "daily": "daily means over a year",
    "alerts": "alert evaluation",
}


class Twin:
    def __init__(self, api: Api, sensors: int) -> None:
        self.http = httpx.Client(base_url=api.base, timeout=600, headers=api._headers(None))
        self.sensors = [f"s{i:04d}" for i in range(sensors)]
        self.blocks = 0  # of BATCH older readings added by grow_to
        self.tick = 0
        measure = {"name": "value", "units": "unit", "datatype": "float"}
        self.post("/sensor/insert-sensor-type", {"name": "scale", "measures": [measure]}, 201)
        for uid in [PROBE, *self.sensors]:
            self.post(
                "/sensor/insert-sensor", {"type_name": "scale", "unique_identifier": uid}, 201
            )
        rule = {"name": "hot", "kind": "threshold", "measure_name": "value", "type_name": "scale"}
        self.post("/alert/insert-alert-rule", {**rule, "params": {"above": 99.5}}, 201)

    def post(self, path: str, body: Any, status: int = 200) -> httpx.Response:
        content = b"" if body is None else orjson.dumps(body)
        reply = self.http.post(path, content=content, headers={"content-type": "application/json"})
        if reply.status_code != status:
            raise RuntimeError(f"{path}: {reply.status_code} {reply.text[:300]}")
        return reply

    def _series(self, uid: str, last: datetime, count: int) -> Iterator[bytes]:
        """Bodies of `count` one-minute readings of `uid` ending at `last`, BATCH a body."""
        for done in range(0, count, BATCH):
            n = min(BATCH, count - done)
            stamps = _minutes(last - done * MINUTE, n)
            values = [float((done + i) % 1000) / 10 for i in range(n)]  # 0.0 to 99.9
            body = {"unique_identifier": uid, "measure_name": "value", "readings": values}
            yield orjson.dumps({**body, "timestamps": stamps})

    def ingest(self, bodies: Iterable[bytes], clients: int = 2) -> None:
        def send(body: bytes) -> None:
            reply = self.http.post(
                "/sensor/insert-sensor-readings",
                content=body,
                headers={"content-type": "application/json"},
            )
            if reply.status_code != 201 or reply.json()["duplicates"]:
                raise RuntimeError(f"ingest: {reply.status_code} {reply.text[:300]}")

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, bodies))

    def seed(self) -> None:
        """The probe's year, and each sensor's last hour (so that every sensor has a latest
        reading and an alert state from the start)."""
        self.ingest(self._series(PROBE, END, YEAR_MINUTES))
        self.ingest(b for uid in self.sensors for b in self._series(uid, END - MINUTE, SEED))

    @property
    def stored(self) -> int:
        return YEAR_MINUTES + SEED * len(self.sensors) + self.blocks * BATCH

    def grow_to(self, size: int) -> float:
        """Add blocks of BATCH older readings, one sensor's a request, to the sensors in
        turn, until the readings number `size`; returns readings/s. Every request has the
        same shape at every size, so the rates compare."""
        wanted = (size - self.stored) // BATCH + self.blocks
        blocks = range(self.blocks, wanted)
        if not blocks:
            return 0.0
        sensors = len(self.sensors)

        def block(k: int) -> bytes:
            depth = k // sensors  # blocks that sensor holds already
            last = END - (SEED + 1 + depth * BATCH) * MINUTE
            return next(self._series(self.sensors[k % sensors], last, BATCH))

        started = time.perf_counter()
        self.ingest(block(k) for k in blocks)
        took = time.perf_counter() - started
        self.blocks = wanted
        return len(blocks) * BATCH / took

    def next_minute(self) -> None:
        """Each sensor's (and the probe's) next reading after END, as the live feed's."""
        self.tick += 1
        stamp = _iso(END + self.tick * MINUTE)
        series = [
            {"unique_identifier": uid, "measure_name": "value", "readings": [50.0 + self.tick],
             "timestamps": [stamp]}
            for uid in [PROBE, *self.sensors]
        ]  # fmt: skip
        self.post("/sensor/insert-readings-bulk", {"series": series}, 201)

    def timed(
        self, runs: int, call: Callable[[], Any], before: Callable[[], Any] | None = None
    ) -> list[float]:
        """Seconds of each of `runs` calls, `before()` run untimed ahead of each."""
        took = []
        for _ in range(runs):
            if before:
                before()
            started = time.perf_counter()
            call()
            took.append(time.perf_counter() - started)
        return took

    def measure(self, step: Step) -> None:
        week = {
            "unique_identifier": PROBE,
            "measure_name": "value",
            "dt_from": _iso(END - timedelta(days=200)),
            "dt_to": _iso(END - timedelta(days=193) - MINUTE),
        }
        year = {
            "unique_identifier": PROBE,
            "measure_name": "value",
            "dt_from": _iso(END - timedelta(days=365)),
            "dt_to": _iso(END),
            "interval": "1d",
            "aggregation": "mean",
        }
        count = len(self.post("/sensor/sensor-readings", week).json())
        assert count == 10_080, count
        step.latencies = {
            "week": self.timed(50, lambda: self.post("/sensor/sensor-readings", week)),
            "latest": self.timed(20, lambda: self.post("/sensor/latest-readings", {})),
            "daily": self.timed(30, lambda: self.post("/sensor/sensor-readings-aggregated", year)),
            "alerts": self.timed(
                5, lambda: self.post("/alert/evaluate-alerts", None), before=self.next_minute
            ),
        }


def write_report(steps: list[Step], out: Path, kind: str, name: str) -> str:
    header = "| readings | ingest readings/s | " + " | ".join(
        f"{label} p50 / p95 ms" for label in QUERIES.values()
    )
    lines = [header + " |", "|---:" * (2 + len(QUERIES)) + "|"]
    for step in steps:
        cells = [f"{step.size:,}", f"{step.ingest_rate:,.0f}"]
        cells += [f"{step.p(n, 0.5):.1f} / {step.p(n, 0.95):.1f}" for n in QUERIES]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(
        f"# Scale benchmark\n\n`benchmarks/scale.py` on {kind}, "
        f"{datetime.now(UTC):%Y-%m-%d}.\n\n{table}\n\n"
        f"![latency against size]({name}.png)\n"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    sizes = [step.size for step in steps]
    for query, label in QUERIES.items():
        p95s = [step.p(query, 0.95) for step in steps]
        line = axes.plot(sizes, p95s, marker="o", label=f"{label}, p95")
        if query in GOALS_MS:
            axes.axhline(GOALS_MS[query], color=line[0].get_color(), linestyle=":", linewidth=1)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e6:g}M"))
    for ticks in (axes.yaxis.set_major_formatter, axes.yaxis.set_minor_formatter):
        ticks(FuncFormatter(lambda y, _: f"{y:g}"))
    axes.set_xlabel("readings stored")
    axes.set_ylabel("latency, ms (end to end; dotted: goals)")
    axes.set_title(f"Latency against size ({kind})")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / f"{name}.png")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**6, 10**7, 10**8])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--name", default="scale-benchmark", help="of the .md and .png")
    args = parser.parse_args()
    base = YEAR_MINUTES + SEED * args.sensors
    if min(args.sizes) < base:
        parser.error(f"each size must be at least the readings seeded at the start: {base:,}")
    database = TestDatabase()
    steps = []
    with tempfile.TemporaryDirectory(prefix="dtbase-scale-") as tmp:
        Path(tmp).chmod(0o755)
        host = start_host(database.url, Path(tmp) / "host")
        try:
            twin = Twin(Api(host.api, host.admin_email, ADMIN_PASSWORD), args.sensors)
            print(f"{database.kind}: the probe's year and each sensor's hour...", flush=True)
            twin.seed()
            for size in sorted(args.sizes):
                rate = twin.grow_to(size)
                step = Step(twin.stored, rate)  # within a block of `size`
                print(f"{step.size:,} readings: ingest {rate:,.0f}/s", flush=True)
                twin.measure(step)
                steps.append(step)
                print(
                    "  " + ", ".join(f"{n} p95 {step.p(n, 0.95):.1f} ms" for n in QUERIES),
                    flush=True,
                )
            print(write_report(steps, args.out, database.kind, args.name))
        finally:
            host.stop()
            database.close()


if __name__ == "__main__":
    main()
