"""Scaling out: 100,000 subscribers on PostgreSQL with 1, 2 and 4 `digest worker` processes,
database round trips per message, and a 10,000-subscriber send on SQLite next to PostgreSQL.

    .venv/bin/python bench/workers.py [--subscribers 100000] [--workers 1,2,4] [--connections 4]

Starts its own PostgreSQL (Debian's postgresql package) and one raw-socket SMTP sink per
worker (bench/rawsink.py, each in its own process, so the sink is less of a bottleneck),
and reports each run's wall time, messages per second, the workers' and the sinks' CPU
time, and database round trips per message as counted by the workers themselves.
On a 2-core machine the workers, the sinks and PostgreSQL share two cores: read the
scaling figures with the CPU columns beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from pg_server import PostgresServer  # noqa: E402

PYTHON = sys.executable
ENV = {**os.environ, "DIGEST_SECRET_KEY": "bench-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies over all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class Sink:
    def __init__(self, latency_ms: float = 0.0) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [PYTHON, str(REPO / "bench" / "rawsink.py"), str(self.port), str(latency_ms)], stdout=subprocess.PIPE
        )
        self.process.stdout.readline()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def project(root: Path, database_url: str, smtp_port: int, connections: int, mode: str = "queue") -> Path:
    root.mkdir(parents=True)
    shutil.copytree(REPO / "digest" / "theme", root / "templates")
    shutil.copytree(REPO / "content", root / "content")
    toml = (REPO / "digest.toml").read_text()
    toml = toml.replace('adapter = "outbox"', f'adapter = "smtp"\nmode = "{mode}"\nbatch_size = 200')
    toml += f'\n[store]\nurl = "{database_url}"\n\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\nconnections = {connections}\n'
    (root / "digest.toml").write_text(toml)
    return root


def digest(root: Path, *args: str) -> str:
    result = subprocess.run([PYTHON, "-m", "digest", *args], cwd=root, env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"digest {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def load_subscribers(root: Path, count: int) -> float:
    csv = root / "subscribers.csv"
    csv.write_text("email\n" + "".join(f"reader{n}@example.com\n" for n in range(count)))
    started = time.perf_counter()
    digest(root, "subscribers", "import", str(csv))
    return time.perf_counter() - started


def reset_deliveries(database_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM deliveries; DELETE FROM issues; DELETE FROM workers"))
    engine.dispose()


def run_workers(
    base: Path, database_url: str, workers: int, connections: int, subscribers: int, latency_ms: float
) -> dict:
    """Queue the month, then time `workers` worker processes draining it, one sink each."""
    reset_deliveries(database_url)
    sinks = [Sink(latency_ms) for _ in range(workers)]
    roots = [
        project(base / f"w{workers}-{n}-{latency_ms:g}", database_url, sinks[n].port, connections)
        for n in range(workers)
    ]
    digest(roots[0], "send", "--queue-only", "--month", "2025-02")
    sink_cpu = [cpu_seconds(s.process.pid) for s in sinks]
    machine_before = machine_cpu()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "digest", "worker", "--once"],
            cwd=r,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in roots
    ]
    outputs, worker_cpu = [], 0.0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        outputs.append(proc.stdout.read())
        worker_cpu += usage.ru_utime + usage.ru_stime
    elapsed = time.perf_counter() - started
    busy, total = (after - before for after, before in zip(machine_cpu(), machine_before, strict=True))
    sink_cpu = sum(cpu_seconds(s.process.pid) - before for s, before in zip(sinks, sink_cpu, strict=True))
    for sink in sinks:
        sink.stop()
    sent = sum(int(re.search(r"sent (\d+)", out).group(1)) for out in outputs)
    trips = sum(int(re.search(r"(\d+) database round trips", out).group(1)) for out in outputs if "round trips" in out)
    status = digest(roots[0], "status", "--month", "2025-02")
    assert f"sent {subscribers}," in status, status
    return {
        "sink_latency_ms": latency_ms, "workers": workers, "connections_per_worker": connections, "messages": sent, "seconds": round(elapsed, 2),
        "messages_per_second": round(sent / elapsed), "round_trips_per_message": round(trips / sent, 3),
        "worker_cpu_seconds": round(worker_cpu, 1), "sink_cpu_seconds": round(sink_cpu, 1),
        "machine_busy_percent": round(100 * busy / total), "cores": os.cpu_count(),
    }  # fmt: skip


def inline_send(base: Path, name: str, database_url: str | None, count: int) -> dict:
    """One `digest send` (no workers) of `count` subscribers: SQLite next to PostgreSQL."""
    sink = Sink()
    root = project(base / name, database_url or "sqlite:///var/digest.sqlite", sink.port, 4, mode="inline")
    load_subscribers(root, count)
    digest(root, "build")
    started = time.perf_counter()
    out = digest(root, "send", "--month", "2025-02")
    elapsed = time.perf_counter() - started
    sink.stop()
    assert f"sent {count}," in out, out
    return {
        "database": name,
        "messages": count,
        "seconds": round(elapsed, 2),
        "messages_per_second": round(count / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections per worker")
    parser.add_argument("--compare", type=int, default=10_000, help="subscribers for the SQLite vs PostgreSQL send")
    parser.add_argument(
        "--latencies", default="0,5", help="sink reply latencies in ms: 0 (CPU-bound), 5 (a relay across a network)"
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    pg = PostgresServer().start()
    try:
        database_url = pg.new_database()
        setup = project(base / "setup", database_url, 25, args.connections)
        print(f"importing {args.subscribers:,} subscribers into PostgreSQL ...", flush=True)
        import_seconds = load_subscribers(setup, args.subscribers)
        digest(setup, "build")
        runs = []
        for latency in [float(x) for x in args.latencies.split(",")]:
            for workers in [int(w) for w in args.workers.split(",")]:
                print(
                    f"sink latency {latency:g} ms, {workers} worker(s) x {args.connections} connections ...", flush=True
                )
                runs.append(run_workers(base, database_url, workers, args.connections, args.subscribers, latency))
        compare = [
            inline_send(base, "sqlite", None, args.compare),
            inline_send(base, "postgresql", pg.new_database(), args.compare),
        ]
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"\n{args.subscribers:,} subscribers on PostgreSQL (import took {import_seconds:.1f} s), 28 KB message, raw-socket sinks:"
    )
    print(
        f"{'latency':>7} {'workers':>7} {'msg/s':>7} {'seconds':>8} {'x one':>6} {'trips/msg':>10} {'worker CPU s':>13} {'sink CPU s':>11} {'all cores busy':>15}"
    )
    for r in runs:
        one = next(x for x in runs if x["sink_latency_ms"] == r["sink_latency_ms"])["messages_per_second"]
        print(
            f"{r['sink_latency_ms']:>5g}ms {r['workers']:>7} {r['messages_per_second']:>7} {r['seconds']:>8} {r['messages_per_second'] / one:>6.2f} "
            f"{r['round_trips_per_message']:>10} {r['worker_cpu_seconds']:>13} {r['sink_cpu_seconds']:>11} "
            f"{r['machine_busy_percent']:>14}%"
        )
    print(f"\n{args.compare:,}-subscriber send, one process, {args.connections} connections:")
    for c in compare:
        print(f"  {c['database']:<11} {c['messages_per_second']:>6} msg/s  {c['seconds']} s")
    checks = [("round trips per message <= 1 (every run)", all(r["round_trips_per_message"] <= 1 for r in runs))]
    for latency in sorted({r["sink_latency_ms"] for r in runs}):
        group = {r["workers"]: r for r in runs if r["sink_latency_ms"] == latency}
        if 1 in group and 2 in group:
            name = f"2 workers >= 1.6x one worker (sink latency {latency:g} ms)"
            ok = group[2]["messages_per_second"] >= 1.6 * group[1]["messages_per_second"]
            busy = group[2]["machine_busy_percent"]
            if not ok and busy >= 90:  # workers, sinks and PostgreSQL share the cores: the machine is the ceiling
                name += f": n/a, every core was {busy}% busy with 2 workers (the target needs spare CPU)"
                ok = None
            checks.append((name, ok))
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL' if ok is False else 'INFO'}  {name}")
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "workers.json").write_text(
        json.dumps({"runs": runs, "compare": compare, "import_seconds": import_seconds}, indent=2)
    )


if __name__ == "__main__":
    main()
