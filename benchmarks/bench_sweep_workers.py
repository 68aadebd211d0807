"""Shared sweeps: the demo preset with 1, 2 and 4 worker processes on PostgreSQL.

Starts a loopback `mlflow server`, creates a throw-away database on the PostgreSQL server at
127.0.0.1:5432 (trust authentication, user postgres) for each run, starts N
`rip sweep demo --storage ...` workers together and reads back from the study, per worker: the
units it computed, its idle time (its process's wall time not spent in a unit: start-up, waiting
for others' units to end, claiming, ending configurations) and the gaps between one claim's end
and the next; the time from the first claim to the last unit's end (units/s counts over it); plus
the time of one heartbeat write. On a 2-core machine the point is the overhead, not the speed-up.

    .venv/bin/python benchmarks/bench_sweep_workers.py [--workers 1,2,4] [--chunk-size 1] [--set percent=50]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import optuna  # noqa: E402
import psycopg2  # noqa: E402

from tests.conftest import BIN, MlflowServer  # noqa: E402

ADMIN = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")


def database() -> tuple[str, str]:
    """A new empty database: (its name, its storage URL)."""
    name = f"rip_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(**ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return name, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def drop(name: str) -> None:
    admin = psycopg2.connect(**ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def run_workers(n: int, storage: str, tracking_uri: str, chunk_size: int, heartbeat: int, overrides: list[str],
                folder: Path) -> dict:
    """Start `n` workers together; return each one's pid -> wall seconds."""
    args = [str(BIN / "rip"), "sweep", "demo", "--storage", storage, "--tracking-uri", tracking_uri,
            "--chunk-size", str(chunk_size), "--heartbeat-interval", str(heartbeat),
            "--set", f"experiment=bench-{n}-{uuid.uuid4().hex[:6]}", *(f"--set={item}" for item in overrides)]
    env = {**os.environ, "RIP_SPOOL": str(folder / "spool")}
    started = time.monotonic()
    workers = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(folder / f"worker-{n}-{i}.log", "w"),
                                env=env, cwd=folder) for i in range(n)]
    walls = {}
    for worker in workers:
        if worker.wait() != 0:
            raise SystemExit(f"a worker failed: see {folder}/worker-{n}-*.log")
        walls[str(worker.pid)] = time.monotonic() - started
    walls["all"] = time.monotonic() - started
    return walls


def heartbeat_seconds(storage: str, repeats: int = 50) -> float:
    """The time of one heartbeat write (what a running unit does every interval)."""
    rdb = optuna.storages.RDBStorage(storage, heartbeat_interval=60)
    study = optuna.create_study(storage=rdb, study_name="heartbeat")
    trial = study.ask()
    started = time.perf_counter()
    for _ in range(repeats):
        rdb.record_heartbeat(trial._trial_id)
    return (time.perf_counter() - started) / repeats


def measure(trials, walls: dict, heartbeat: int, beat: float) -> dict:
    """Per-worker units, busy and idle time; gaps between one claim's end and the next claim.

    A worker computes the units of one claim together (they fill a batch), so its busy time is
    the union of its units' intervals, not their sum.
    """
    by_worker, gaps = {}, []
    for trial in trials:
        by_worker.setdefault(trial.user_attrs["rip.worker"].split(":")[1], []).append(trial)
    idle = {}
    for pid, units in by_worker.items():
        spans = busy_spans([(t.datetime_start, t.datetime_complete) for t in units])
        busy = sum((end - start).total_seconds() for start, end in spans)
        idle[pid] = (len(units), walls[pid] - busy)
        gaps += [(b[0] - a[1]).total_seconds() for a, b in zip(spans, spans[1:])]
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    heartbeats = sum(1 + d // heartbeat for d in durations)  # one at the claim, then one per interval
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return dict(units=len(trials), idle=idle, gap=statistics.mean(gaps) if gaps else float("nan"),
                heartbeat=heartbeats * beat / len(trials), unit=statistics.mean(durations), span=span)


def busy_spans(intervals: list[tuple]) -> list[tuple]:
    """The union of (start, end) intervals, as disjoint intervals in time order."""
    spans = []
    for start, end in sorted(intervals):
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--chunk-size", type=int, default=1, help="images per unit (demo: 4 configurations x 4)")
    parser.add_argument("--heartbeat-interval", type=int, default=60)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a demo preset entry, e.g. percent=50 for shorter units")
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    server = MlflowServer(folder / "server").start(timeout=600)
    rows = []
    try:
        for n in (int(value) for value in options.workers.split(",")):
            name, storage = database()
            try:
                walls = run_workers(n, storage, server.uri, options.chunk_size, options.heartbeat_interval,
                                    options.overrides, folder)
                [summary] = optuna.get_all_study_summaries(storage)
                trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
                assert {t.state.name for t in trials} == {"COMPLETE"}, "a unit did not complete"
                beat = heartbeat_seconds(storage)
            finally:
                drop(name)
            rows.append((n, walls["all"], measure(trials, walls, options.heartbeat_interval, beat), beat))
    finally:
        server.stop()
    print(f"demo preset {' '.join(options.overrides)}, --chunk-size {options.chunk_size}, heartbeat every "
          f"{options.heartbeat_interval} s, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    print("| workers | units | wall s | first claim to last unit s | units/s | mean unit s "
          "| idle s per worker (units) | claim gap ms | heartbeat ms/unit |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for n, wall, m, beat in rows:
        idle = ", ".join(f"{seconds:.1f} ({units})" for units, seconds in m["idle"].values())
        print(f"| {n} | {m['units']} | {wall:.1f} | {m['span']:.1f} | {m['units'] / m['span']:.3f} | {m['unit']:.2f} "
              f"| {idle} | {m['gap'] * 1000:.0f} | {m['heartbeat'] * 1000:.1f} |")
    print(f"one heartbeat write: {rows[0][3] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
