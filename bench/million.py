"""Peak memory of a send to 1,000,000 subscribers on PostgreSQL: the subscribers loaded with COPY, then
`digest send --queue-only` and 2 `digest worker` processes against raw-socket sinks (bench/rawsink.py).

    .venv/bin/python bench/million.py [--subscribers 1000000] [--seconds 90]

Reports each process's peak RSS (the kernel's ru_maxrss, from wait4) and how long each step took. The
workers run for `--seconds` and are then stopped with SIGTERM (they finish and record what is in flight);
with `--seconds 0` they drain the whole queue. Stopping early keeps the bench short on a shared machine:
the whole send's time is then estimated from the rate, and the workers' memory has long reached its
plateau (they claim `batch_size` deliveries at a time, whatever the queue's length).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from workers import ENV, PYTHON, PostgresServer, Sink, digest, project

TARGET_MB = 120


def copy_subscribers(database_url: str, count: int) -> float:
    """COPY `count` active subscribers straight into the table digest created (its NOT NULL columns only)."""
    import psycopg

    started = time.perf_counter()
    now = datetime.now(UTC).isoformat()
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'subscribers' "
            "AND is_nullable = 'NO' AND column_default IS NULL ORDER BY ordinal_position"
        ).fetchall()
        values = {"email": None, "status": "active"}
        row_tail = [values.get(n, "0" if t in ("integer", "bigint") else now) for n, t in columns if n != "email"]
        names = ["email"] + [n for n, _ in columns if n != "email"]
        with conn.cursor().copy(f"COPY subscribers ({', '.join(names)}) FROM STDIN") as copy:
            tail = "\t" + "\t".join(row_tail) + "\n"
            for start in range(0, count, 50_000):
                chunk = io.StringIO()
                for n in range(start, min(start + 50_000, count)):
                    chunk.write(f"reader{n}@example.com{tail}")
                copy.write(chunk.getvalue())
    return time.perf_counter() - started


def measured(command: list[str], cwd: Path, seconds: float = 0) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one process; SIGTERM after `seconds` if given."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if seconds:
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.stdout.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=90, help="how long the workers run; 0: until done")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    pg = PostgresServer().start()
    sinks = [Sink(), Sink()]
    try:
        url = pg.new_database()
        roots = [project(base / f"w{n}", url, sinks[n].port, 4) for n in range(2)]
        digest(roots[0], "subscribers", "add", "writer@example.com")  # creates the tables
        print(f"COPY {args.subscribers:,} subscribers ...", flush=True)
        copied = copy_subscribers(url, args.subscribers)
        digest(roots[0], "build")
        print("digest send --queue-only ...", flush=True)
        queue = measured([PYTHON, "-m", "digest", "send", "--queue-only", "--month", "2025-02"], roots[0])
        print(f"2 workers for {args.seconds:g} s ..." if args.seconds else "2 workers until done ...", flush=True)
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [PYTHON, "-m", "digest", "worker", "--once"], cwd=r, env=ENV, stdout=subprocess.PIPE, text=True
            )
            for r in roots
        ]
        if args.seconds:
            time.sleep(args.seconds)
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
        workers = []
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            workers.append((usage.ru_maxrss / 1024, proc.stdout.read()))
        elapsed = time.perf_counter() - started
    finally:
        for sink in sinks:
            sink.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)
    sent = sum(int(out.split("sent ", 1)[1].split(",", 1)[0]) for _, out in workers)
    total = args.subscribers + 1
    rate = sent / elapsed
    one, five, fifteen = os.getloadavg()
    print(f"\nmachine: load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores")
    print(f"COPY of {args.subscribers:,} subscribers: {copied:.1f} s")
    print(f"digest send --queue-only: {queue[0]:.1f} s, peak RSS {queue[1]:.0f} MB ({queue[2].strip()})")
    for n, (rss, out) in enumerate(workers, 1):
        print(f"worker {n}: peak RSS {rss:.0f} MB ({out.strip()})")
    whole = f"; the whole send at this rate: {total / rate / 60:.1f} min" if sent < total else ""
    print(f"2 workers: {sent:,} messages in {elapsed:.1f} s, {rate:,.0f} messages/s{whole}")
    peak = max([queue[1]] + [rss for rss, _ in workers])
    print(f"\n  {'PASS' if peak < TARGET_MB else 'FAIL'}  peak RSS under {TARGET_MB} MB per process ({peak:.0f} MB)")


if __name__ == "__main__":
    main()
