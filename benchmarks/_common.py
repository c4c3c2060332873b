"""Helpers the benchmark scripts share: machine facts, a platform home, timing, tables, results.

Each script stays one command (`.venv/bin/python benchmarks/<name>.py`) and writes its figures
to `benchmarks/results/<name>.json` together with the machine they were measured on.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

from energy_assets.settings import LOCATION_VARIABLES, environment_restored

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent


def machine() -> dict:
    """Cores, memory and load at measurement time: the figures only mean something beside them."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }


def write_results(name: str, result: dict) -> Path:
    """`results/<name>.json` with the machine and the script's wall time so far (printed too:
    every script must finish within 15 minutes at its default size)."""
    wall = time.time() - psutil.Process().create_time()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {**result, "machine": machine(), "script_wall_s": round(wall, 1)}
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\n{name}: {wall:,.0f} s wall for the whole script; results in {path}")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, numbers right-aligned (ints with thousands separators)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.2f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [list(headers), *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(len(headers))]
    aligned = [
        [c.rjust(w) if n else c.ljust(w) for c, w, n in zip(r, widths, numeric, strict=True)]
        for r in cells
    ]
    lines = ["  ".join(r) for r in aligned]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def platform_environ(home: Path, **extra: str) -> dict[str, str]:
    """os.environ for a platform of its own: its home, embedded PostgreSQL on a free port."""
    env = {k: v for k, v in os.environ.items() if k not in LOCATION_VARIABLES}
    env.update(
        {
            "ENERGY_HOME": str(home),
            "ENERGY_PG_PORT": str(free_port()),
            "ENERGY_DASHBOARD_PORT": str(free_port()),
            "ENERGY_FILE_STABLE_SECONDS": "0",
            "OMP_WAIT_POLICY": "PASSIVE",
            **extra,
        }
    )
    return env


@contextlib.contextmanager
def use_environ(env: dict[str, str]) -> Iterator[None]:
    """Run the block with `env` as the whole process environment."""
    with environment_restored():
        os.environ.clear()
        os.environ.update(env)
        yield


def postgres_pid(pgdata: Path) -> int | None:
    with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    return None


class PeakMemory:
    """Samples the resident memory of a process tree, and of the PostgreSQL server, until stopped.

    The platform's processes (Python, dbt) are summed by RSS; PostgreSQL by PSS, since its
    backends share the buffer cache and would otherwise count it once per backend.
    """

    def __init__(self, pid: int, pgdata: Path, every: float = 0.5) -> None:
        self.pid, self.pgdata, self.every = pid, pgdata, every
        self.peak_mb = self.postgres_peak_mb = 0.0
        self.samples: list[tuple[float, float]] = []  # (time.time(), MB) of the process tree
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree(pid: int | None) -> list[psutil.Process]:
        if pid is None or pid <= 0:  # negative while initdb runs the server in bootstrap mode
            return []
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        return []

    @staticmethod
    def _sum_mb(procs: list[psutil.Process], pss: bool) -> float:
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_full_info().pss if pss else proc.memory_info().rss
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            tree = self._sum_mb(self._tree(self.pid), pss=False)
            self.samples.append((time.time(), tree))
            self.peak_mb = max(self.peak_mb, tree)
            postgres = self._tree(postgres_pid(self.pgdata))
            self.postgres_peak_mb = max(self.postgres_peak_mb, self._sum_mb(postgres, pss=True))

    def peak_between(self, start: float, end: float) -> float:
        """The process tree's peak MB sampled in [start, end] (epoch seconds)."""
        return max((mb for t, mb in self.samples if start <= t <= end), default=0.0)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def step_windows(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """(start, end) epoch seconds of each step of a Dagster run, from its event log, in the
    order they ran."""
    stats = sorted(
        (s for s in instance.get_run_step_stats(run_id) if s.start_time and s.end_time),
        key=lambda s: s.start_time,
    )
    return {s.step_key: (s.start_time, s.end_time) for s in stats}


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Wall seconds of each step of a Dagster run, in the order they ran."""
    return {step: end - start for step, (start, end) in step_windows(instance, run_id).items()}


def model_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds per dbt model of a run, from the `Execution Duration` dagster-dbt records."""
    from dagster import DagsterEventType, EventRecordsFilter

    records = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.ASSET_MATERIALIZATION), limit=200
    )
    seconds = {}
    for record in records:
        if record.run_id != run_id:
            continue
        materialization = record.asset_materialization
        duration = materialization.metadata.get("Execution Duration")
        if duration is not None:
            seconds["/".join(materialization.asset_key.path)] = round(float(duration.value), 2)
    return seconds


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
