"""Sending one issue through the SMTP adapter, store bookkeeping included, next to a baseline.

    .venv/bin/python bench/send.py [--sizes 1000,10000,50000] [--aiosmtpd-sizes 1000,10000]

For each sink (bench/rawsink.py, a minimal raw-socket server, and bench/aiosink.py, a
discarding aiosmtpd server, each in its own process) it measures the baseline, the plain
standard-library loop (one reused smtplib connection, `sendmail` of one pre-built message
of the same size), then `digest send` of the shipped February 2025 issue to N subscribers
(SQLite store: enqueue, claim, personalise, send, record) with 1 and with 4 connections,
each in a fresh child process whose peak RSS is reported. aiosmtpd tops out near 250
messages/s here, so it runs the smaller sizes only. Results also go to bench/results/send.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "DIGEST_SECRET_KEY": "bench-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sink:
    def __init__(self, kind: str):
        self.kind = kind
        self.port = free_port()
        script = "rawsink.py" if kind == "raw" else "aiosink.py"
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / script), str(self.port)], stdout=subprocess.PIPE, text=True
        )
        self.process.stdout.readline()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def make_project(root: Path, port: int, connections: int) -> Path:
    root.mkdir(parents=True)
    shutil.copytree(REPO / "templates", root / "templates")
    shutil.copytree(REPO / "content", root / "content")
    toml = (REPO / "digest.toml").read_text().replace('adapter = "outbox"', 'adapter = "smtp"')
    toml += f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nconnections = {connections}\n'
    (root / "digest.toml").write_text(toml)
    return root


def one_message(root: Path) -> bytes:
    """A real personalised message of the issue, to send in the baseline loop."""
    sys.path.insert(0, str(REPO))
    from digest import publish
    from digest.config import load_config
    from digest.delivery.message import Composer, Recipient

    config = load_config(root / "digest.toml")
    rendered = publish.render(config)
    url = "https://links.example.com/unsubscribe/" + "x" * 60
    return (
        Composer(rendered.email, config).compose(Recipient("reader@example.com", "<bench@links.example.com>", url)).raw
    )


def baseline(port: int, raw: bytes, count: int) -> float:
    """The loopback limit: the plain standard-library loop, one reused connection, one pre-built message."""
    client = smtplib.SMTP("127.0.0.1", port)
    client.ehlo()
    started = time.perf_counter()
    for n in range(count):
        client.sendmail("digest@links.example.com", [f"reader{n}@example.com"], raw)
    elapsed = time.perf_counter() - started
    client.quit()
    return count / elapsed


def child(root: Path) -> None:
    """Run in a fresh process: render, then time publish.send; print JSON with peak RSS."""
    sys.path.insert(0, str(REPO))
    from digest import publish
    from digest.config import load_config

    config = load_config(root / "digest.toml")
    rendered = publish.render(config)
    started = time.perf_counter()
    report = publish.send(config, rendered)
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"sent": report.stats.sent, "seconds": elapsed, "peak_rss_mb": usage.ru_maxrss / 1024,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime, "failed": report.stats.failed}))  # fmt: skip


def digest_send(base: Path, sink: Sink, subscribers: int, connections: int) -> dict:
    root = make_project(base / f"{sink.kind}-{subscribers}-{connections}", sink.port, connections)
    csv = root / "subscribers.csv"
    csv.write_text("email\n" + "".join(f"reader{n}@example.com\n" for n in range(subscribers)))
    subprocess.run(
        [sys.executable, "-m", "digest", "-q", "subscribers", "import", str(csv)],
        cwd=root,
        env=ENV,
        check=True,
        capture_output=True,
    )
    sink_before = cpu_seconds(sink.process.pid)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(root)], cwd=root, env=ENV, check=True, capture_output=True, text=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["sent"] == subscribers and result["failed"] == 0, result
    result.update(sink=sink.kind, subscribers=subscribers, connections=connections, rate=subscribers / result["seconds"],
                  sink_cpu_seconds=cpu_seconds(sink.process.pid) - sink_before)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--aiosmtpd-sizes", default="1000,10000")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(Path(args.child))
        return
    base = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    runs, baselines = [], {}
    try:
        raw = one_message(make_project(base / "message", 25, 1))
        for kind, sizes in (("raw", args.sizes), ("aiosmtpd", args.aiosmtpd_sizes)):
            sink = Sink(kind)
            try:
                count = 10_000 if kind == "raw" else 2_000
                baselines[kind] = baseline(sink.port, raw, count)
                print(f"{kind}: baseline {baselines[kind]:.0f} msg/s", flush=True)
                for size in [int(s) for s in sizes.split(",") if s]:
                    for connections in (1, 4):
                        result = digest_send(base, sink, size, connections)
                        runs.append(result)
                        print(f"{kind}: {size:,} subscribers, {connections} connection(s): {result['rate']:.0f} msg/s, "
                              f"{result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip
            finally:
                sink.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(runs, baselines, len(raw))


def report(runs: list[dict], baselines: dict[str, float], size: int) -> None:
    print(f"\nmessage: {size / 1000:.1f} KB (the shipped 2025-02 issue, personalised)")
    print(
        f"{'sink':<9} {'subscribers':>11} {'conns':>5} {'msg/s':>7} {'x base':>7} {'seconds':>8} {'RSS MB':>7} {'own CPU s':>9} {'sink CPU s':>10}"
    )
    for r in runs:
        print(f"{r['sink']:<9} {r['subscribers']:>11,} {r['connections']:>5} {r['rate']:>7.0f} {r['rate'] / baselines[r['sink']]:>7.2f} "
              f"{r['seconds']:>8.1f} {r['peak_rss_mb']:>7.0f} {r['cpu_seconds']:>9.1f} {r['sink_cpu_seconds']:>10.1f}")  # fmt: skip
    for kind, rate in baselines.items():
        print(f"baseline ({kind}): {rate:.0f} msg/s")
    raw = [r for r in runs if r["sink"] == "raw"]
    checks = []
    for kind in baselines:
        largest = max(r["subscribers"] for r in runs if r["sink"] == kind)
        mine = [r for r in runs if r["sink"] == kind and r["subscribers"] == largest]
        checks.append(
            (
                f"{kind}: one connection >= 80% of the baseline ({largest:,})",
                all(r["rate"] >= 0.8 * baselines[kind] for r in mine if r["connections"] == 1),
            )
        )
        checks.append(
            (
                f"{kind}: parallel connections beat the baseline ({largest:,})",
                all(r["rate"] > baselines[kind] for r in mine if r["connections"] > 1),
            )
        )
    ten = [r for r in raw if r["subscribers"] == 10_000]
    checks.append(
        ("10,000 subscribers end to end < 20 s (raw sink)", bool(ten) and all(r["seconds"] < 20 for r in ten))
    )
    big = [r for r in raw if r["subscribers"] == max(x["subscribers"] for x in raw)]
    small = [r for r in raw if r["subscribers"] == min(x["subscribers"] for x in raw)]
    checks.append(("peak RSS < 150 MB at the largest size", all(r["peak_rss_mb"] < 150 for r in big)))
    checks.append(
        (
            "peak RSS does not grow with subscribers (within 20 MB)",
            max(r["peak_rss_mb"] for r in big) - max(r["peak_rss_mb"] for r in small) < 20,
        )
    )
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "send.json").write_text(json.dumps({"baselines": baselines, "runs": runs, "message_bytes": size}, indent=2))


if __name__ == "__main__":
    main()
