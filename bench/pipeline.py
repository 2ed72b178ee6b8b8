"""The pipeline's stages on synthetic months: collect, render email, render feeds, write site.

    .venv/bin/python bench/pipeline.py

Generates realistic months (titles, URLs, two or three paragraphs of Markdown commentary
per entry) of 30, 300 and 3,000 entries, and an archive of 10,000 entry files, then
measures in-process after warm-up (median and best of several repeats), and the start-up
time of `digest --help` next to `python -c pass`. Results also go to bench/results/pipeline.json.

The archive dimension: a 30-entry month after 12, 120 and 600 earlier months of 30 entries each
(360, 3,600 and 18,000 files), built in-process cold (no var/ caches) and warm, incremental and
`--all`: warm incremental with nothing changed, and with one entry of the month edited before
each build (the month's email, article and page render again). Next to it, the whole `digest
build` process against the naive chain's (bench/naive.py), alternating, in the same run; and the
cold collect of one month from 10,000 files in one process and with worker processes.

    .venv/bin/python bench/pipeline.py [--part stages,archive,collect,startup] [--archives 12,120,600]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest import collect, publish  # noqa: E402
from digest.config import load_config  # noqa: E402
from digest.files import write_atomic  # noqa: E402
from digest.render import markdown  # noqa: E402
from digest.render.email import render_email  # noqa: E402
from digest.render.feed import render_feeds  # noqa: E402
from digest.render.markdown import commentary_tree  # noqa: E402
from digest.render.site import render_article, render_site  # noqa: E402

WORDS = [
    "model",
    "training",
    "inference",
    "scaling",
    "compute",
    "cluster",
    "latency",
    "memory",
    "attention",
    "transformer",
    "quantum",
    "chip",
    "error",
    "correction",
    "market",
    "growth",
    "revenue",
    "platform",
    "agent",
    "search",
    "reasoning",
    "benchmark",
    "dataset",
    "evaluation",
    "open",
    "source",
    "research",
    "paper",
    "report",
    "podcast",
    "interview",
    "startup",
    "policy",
    "energy",
    "data",
    "center",
    "power",
    "grid",
    "supply",
    "chain",
    "robotics",
    "vision",
    "language",
]
SITES = [
    "arxiv.org/abs",
    "www.nature.com/articles",
    "substack.com/p",
    "www.youtube.com/watch",
    "blog.example.org/posts",
    "www.ft.com/content",
]
SECTIONS = ["Articles and Blogs", "Substack", "Papers and Reports", "YouTube and Podcasts", "News"]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
    if rng.random() < 0.2:
        i = rng.randrange(len(words))
        words[i] = f"[{words[i]}](https://{rng.choice(SITES)}/{rng.randint(1000, 99999)})"
    if rng.random() < 0.2:
        i = rng.randrange(len(words))
        words[i] = f"*{words[i]}*"
    return " ".join(words).capitalize() + "."


def commentary(rng: random.Random) -> str:
    paragraphs = [" ".join(sentence(rng) for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(2, 3))]
    if rng.random() < 0.4:
        paragraphs.append("\n".join(f"- {sentence(rng)}" for _ in range(rng.randint(2, 4))))
    return "\n\n".join(paragraphs)


def entry_text(rng: random.Random, n: int, month: date) -> str:
    title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).title()
    day = rng.randint(1, 28)
    return (
        f'---\ntitle: "{title} {n}"\nurl: https://{rng.choice(SITES)}/{n}-{rng.randint(0, 10**9)}\n'
        f"date: {month:%Y-%m}-{day:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00\n"
        f"section: {rng.choice(SECTIONS)}\nsource: {rng.choice(WORDS).title()} Weekly\n---\n\n{commentary(rng)}\n"
    )


def make_project(root: Path, months: list[tuple[date, int]]) -> Path:
    rng = random.Random(42)
    shutil.copy(REPO / "digest.toml", root / "digest.toml")
    toml = (root / "digest.toml").read_text().replace('templates = "templates"\n', "")  # the built-in theme
    (root / "digest.toml").write_text(toml)
    n = 0
    for month, count in months:
        folder = root / "content" / f"{month:%Y}" / f"{month:%m}"
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            n += 1
            (folder / f"entry-{n:05d}.md").write_text(entry_text(rng, n, month))
    return root


def timed(fn, repeats: int) -> tuple[float, float, object]:
    result = fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), result


def stages(root: Path, month: date, repeats: int) -> dict[str, float]:
    """The stages as `digest build` runs them (digest.publish.render, then write)."""
    config = load_config(root / "digest.toml")
    site = config.paths.output / "site"

    def collect_month():
        commentary_tree.cache_clear()  # measure a real build: parse every entry's Markdown each time
        markdown._rendered.cache_clear()
        archive = collect.load_archive(config)
        issues = {m: archive.issue(m) for m in archive.months()}
        return issues, issues[month]

    def feeds(issues):
        recent = list(issues.values())[-config.feeds.keep :]
        articles = {i.key: render_article(i, config) for i in issues.values()}
        return articles, render_feeds(recent, articles, config)

    def write_site(issues, articles, rendered_feeds):
        for page in render_site(list(issues.values()), articles, config):
            write_atomic(site / page.path, page.body)
        for name, body in (
            ("feed.xml", rendered_feeds.rss),
            ("atom.xml", rendered_feeds.atom),
            ("feed.json", rendered_feeds.json),
        ):
            write_atomic(site / name, body)

    def everything():
        issues, issue = collect_month()
        render_email(issue, config)
        articles, rendered = feeds(issues)
        write_site(issues, articles, rendered)

    c_med, _, (issues, issue) = timed(collect_month, repeats)
    e_med, _, email = timed(lambda: render_email(issue, config), repeats)  # the text part reuses collect's tokens
    f_med, _, (articles, rendered) = timed(lambda: feeds(issues), repeats)
    w_med, _, _ = timed(lambda: write_site(issues, articles, rendered), repeats)
    t_med, t_min, _ = timed(everything, repeats)
    return {
        "collect": c_med, "render_email": e_med, "render_feeds": f_med, "write_site": w_med, "total": t_med,
        "total_best": t_min, "email_kb": len(email.html.encode()) / 1000,
    }  # fmt: skip


def collect_from_archive(root: Path, month: date, repeats: int) -> tuple[float, float, float]:
    config = load_config(root / "digest.toml")
    shutil.rmtree(config.var_dir / "cache" / "content", ignore_errors=True)
    before, started = os.times(), time.perf_counter()
    collect.load_archive(config).issue(month)
    cold, after = time.perf_counter() - started, os.times()
    cpu = sum(after[:4]) - sum(before[:4])  # this process and the worker processes it waited for

    def warm_collect():  # as a new process would: from var/, not from this process's memory of it
        collect._READ_SHARDS.clear()
        collect._MADE.clear()
        return collect.load_archive(config).issue(month)

    warm, _, _ = timed(warm_collect, repeats)
    return cold, warm, cpu


def startup(runs: int = 20) -> tuple[float, float]:
    digest = str(Path(sys.executable).parent / "digest")

    def median_of(command: list[str]) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    return median_of([digest, "--help"]), median_of([sys.executable, "-c", "pass"])


ARCHIVE_MONTH = date(2025, 3, 1)


def archive_months(earlier: int) -> list[tuple[date, int]]:
    """`earlier` months of 30 entries before ARCHIVE_MONTH, then ARCHIVE_MONTH's 30."""
    months = []
    for back in range(earlier, -1, -1):
        index = ARCHIVE_MONTH.year * 12 + ARCHIVE_MONTH.month - 1 - back
        months.append((date(index // 12, index % 12 + 1, 1), 30))
    return months


def spin() -> float:
    """CPU seconds for a fixed pure-Python loop: how fast this machine's core was during the run (0.39 s at
    its fastest on the 2-core virtual machine the figures in bench/README.md come from; 0.45-0.62 s when its
    host was busy, which slows every figure alike)."""
    started = time.process_time()
    total = 0
    for i in range(20_000_000):
        total += i
    return time.process_time() - started


def archive_builds(root: Path, repeats: int) -> dict[str, float]:
    """In-process builds of ARCHIVE_MONTH, median seconds, as `digest build` makes them."""
    config = load_config(root / "digest.toml")
    edited = sorted((root / "content" / f"{ARCHIVE_MONTH:%Y/%m}").glob("*.md"))[0]
    original = edited.read_text()

    def wipe() -> None:
        shutil.rmtree(root / "var", ignore_errors=True)
        shutil.rmtree(root / "output", ignore_errors=True)

    def edit(n: int) -> None:
        edited.write_text(original.replace("\n---\n\n", f"\n---\n\nEdit {n}. ", 1))

    def cold(full: bool) -> float:
        times = []
        for _ in range(max(repeats // 3, 1)):
            wipe()
            started = time.perf_counter()
            publish.build(config, ARCHIVE_MONTH, full=full)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    cpu: dict[str, float] = {}

    def warm(full: bool, change: bool, forget: bool = False) -> float:
        """`forget`: this process's memory of the content-cache files and of the issues it made is dropped before
        each build, so the scan reads them from var/ as a new `digest build` process does (imports stay warm)."""
        publish.build(config, ARCHIVE_MONTH)  # the caches exist
        times, cpu_times = [], []
        for n in range(repeats):
            if change:
                edit(n)
            if forget:
                collect._READ_SHARDS.clear()
                collect._FACTS.clear()
                collect._MADE.clear()
                markdown._rendered.cache_clear()
            started, cpu_started = time.perf_counter(), time.process_time()
            publish.build(config, ARCHIVE_MONTH, full=full)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
        cpu[
            f"{'warm_all' if full else 'warm_incremental'}{'_edited' if change else ''}{'_forget' if forget else ''}_cpu"
        ] = statistics.median(cpu_times)
        return statistics.median(times)

    def scan() -> float:
        return timed(lambda: collect.load_archive(config), repeats)[0]

    results = {
        "cold_incremental": cold(False),
        "cold_all": cold(True),
        "warm_incremental": warm(False, False),
        "warm_incremental_edited": warm(False, True),
        "warm_incremental_edited_forget": warm(False, True, forget=True),
        "spin": spin(),
        "warm_all": warm(True, False) if repeats > 1 else cold(True),
        "scan": scan(),
    }
    edited.write_text(original)
    return {**results, **cpu}


def processes(root: Path, runs: int) -> dict[str, float]:
    """Whole processes, alternating: `digest build` (one entry of the month edited before each run, so the
    email renders; and with nothing changed) against the naive chain. Median wall seconds and CPU seconds."""
    digest = str(Path(sys.executable).parent / "digest")
    naive = [sys.executable, str(REPO / "bench" / "naive.py"), str(root), f"{ARCHIVE_MONTH:%Y-%m}"]
    build = [digest, "build", "--month", f"{ARCHIVE_MONTH:%Y-%m}"]
    edited = sorted((root / "content" / f"{ARCHIVE_MONTH:%Y/%m}").glob("*.md"))[1]
    original = edited.read_text()
    measured: dict[str, list[tuple[float, float]]] = {"digest_edited": [], "digest_unchanged": [], "naive": []}

    def run(name: str, command: list[str]) -> None:
        before = os.times()
        started = time.perf_counter()
        subprocess.run(command, cwd=root, stdout=subprocess.DEVNULL, check=True)
        after = os.times()
        cpu = after.children_user - before.children_user + after.children_system - before.children_system
        measured[name].append((time.perf_counter() - started, cpu))

    subprocess.run(build, cwd=root, stdout=subprocess.DEVNULL, check=True)  # the caches exist
    for n in range(runs):
        edited.write_text(original.replace("\n---\n\n", f"\n---\n\nProcess edit {n}. ", 1))
        run("digest_edited", build)
        run("naive", naive)
        run("digest_unchanged", build)
    edited.write_text(original)
    out = {}
    for name, pairs in measured.items():
        out[name] = statistics.median(w for w, _ in pairs)
        out[name + "_cpu"] = statistics.median(c for _, c in pairs)
    return out


def before_render(root: Path, runs: int) -> dict[str, float]:
    """What a `digest build` process spends before it renders: interpreter, imports, config, scan."""
    code = (
        "import time, sys; t = time.perf_counter(); import digest.cli; from digest import publish; "
        "a = time.perf_counter(); from digest.config import load_config; c = load_config('digest.toml'); "
        "b = time.perf_counter(); from digest import collect; collect.load_archive(c); "
        "d = time.perf_counter(); print(a - t, b - a, d - b)"
    )
    rows = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
        total = time.perf_counter() - started
        imports, config, scan = map(float, done.stdout.split())
        rows.append((total, imports, config, scan))
    return {
        name: statistics.median(row[i] for row in rows)
        for i, name in enumerate(("process_to_rendering", "imports", "config", "scan"))
    }


def archive_dimension(base: Path, sizes: list[int]) -> dict[str, object]:
    from naive import prerender

    results: dict[str, object] = {}
    for earlier in sizes:
        root = base / f"archive{earlier}"
        root.mkdir()
        months = archive_months(earlier)
        make_project(root, months)
        prerender(root, [m for m, _ in months[-12:-1]])
        print(f"archive: 30 entries after {earlier} months of 30 ({earlier * 30:,} files) ...", flush=True)
        row: dict[str, object] = archive_builds(root, repeats=7 if earlier <= 120 else 3)
        if earlier == 12:
            row.update(processes(root, runs=7))
            row.update(before_render(root, runs=7))
        results[str(earlier)] = row
    return results


def cold_collect(base: Path, repeats: int = 3) -> dict[str, float]:
    """One month from 10,000 files with no cache, in one process and with worker processes, alternating."""
    root = base / "archive"
    root.mkdir()
    months = [(date(2017 + i // 12, i % 12 + 1, 1), 100) for i in range(100)]  # 100 months x 100 = 10,000 files
    make_project(root, months)
    print("archive of 10,000 entry files ...", flush=True)
    default, spare = collect.PARALLEL_MIN_FILES, collect._cores_to_spare
    modes = {  # one process; a forked worker whatever the load; as `digest` decides (a worker if a core is idle)
        "cold_serial": (10**9, spare),
        "cold_pool": (default, lambda cores: cores >= 2),
        "cold": (default, spare),
    }
    runs: dict[str, list[float]] = {"warm": [], **{n: [] for name in modes for n in (name, name + "_cpu")}}
    try:
        for _ in range(repeats):
            for name, (threshold, decide) in modes.items():
                collect.PARALLEL_MIN_FILES, collect._cores_to_spare = threshold, decide
                cold, warm, cpu = collect_from_archive(root, months[50][0], repeats=3)
                runs[name].append(cold)
                runs[name + "_cpu"].append(cpu)
                runs["warm"].append(warm)
    finally:
        collect.PARALLEL_MIN_FILES, collect._cores_to_spare = default, spare
    return {name: statistics.median(times) for name, times in runs.items()}


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def byte_compiled() -> None:
    """Time processes as an installed package runs: with its modules' bytecode written (pip compiles at install
    time). Where PYTHONDONTWRITEBYTECODE is set, a module changed since its last .pyc was written would be
    compiled from source in every timed process: 50-100 ms that no user pays."""
    import compileall

    compileall.compile_dir(str(REPO / "digest"), quiet=1)


def main() -> None:
    byte_compiled()
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default="stages,archive,collect,startup")
    parser.add_argument("--archives", default="12,120,600", help="earlier months of 30 entries")
    options = parser.parse_args()
    parts = options.part.split(",")
    base = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    month = date(2025, 3, 1)
    results: dict[str, object] = {"load_before": machine_load()}
    try:
        if "stages" in parts:
            for size in (30, 300, 3000):
                root = base / f"m{size}"
                root.mkdir()
                make_project(root, [(month, size)])
                print(f"month of {size:,} entries ...", flush=True)
                results[str(size)] = stages(root, month, repeats=7 if size < 3000 else 3)
        if "archive" in parts:
            results["archives"] = archive_dimension(base, [int(n) for n in options.archives.split(",")])
        if "collect" in parts:
            results["archive_10000"] = cold_collect(base)
        if "startup" in parts:
            help_seconds, python_seconds = startup()
            results["startup"] = {"digest_help": help_seconds, "python_pass": python_seconds}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    results["load_after"] = machine_load()
    report(results)


def report(r: dict) -> None:
    ms = lambda seconds: f"{seconds * 1000:8.1f}"  # noqa: E731
    checks = []
    print(f"\nmachine: {r['load_before']} before, {r['load_after']} after")
    if "30" in r:
        print(
            f"\n{'entries':>8} {'collect':>8} {'email':>8} {'feeds':>8} {'site':>8} {'total':>8}  (ms, median; email KB)"
        )
        for size in ("30", "300", "3000"):
            s = r[size]
            print(
                f"{size:>8} {ms(s['collect'])} {ms(s['render_email'])} {ms(s['render_feeds'])} "
                f"{ms(s['write_site'])} {ms(s['total'])}   {s['email_kb']:.0f} KB"
            )
        checks += [
            ("300 entries < 150 ms", r["300"]["total"] < 0.150),
            ("3,000 entries within 12x of 300 (linear)", r["3000"]["total"] <= 12 * r["300"]["total"]),
        ]
    if "archives" in r:
        checks += report_archives(r["archives"], ms)
    if "archive_10000" in r:
        a = r["archive_10000"]
        print(
            f"\ncollect one month of a 10,000-file archive: {a['warm'] * 1000:.1f} ms warm; cold (no cache) "
            f"{a['cold_serial'] * 1000:.0f} ms in one process ({a['cold_serial_cpu'] * 1000:.0f} ms CPU), "
            f"{a['cold_pool'] * 1000:.0f} ms with a worker process ({a['cold_pool_cpu'] * 1000:.0f} ms CPU in all), "
            f"{a['cold'] * 1000:.0f} ms as digest chooses"
        )
        checks += [
            ("one month from 10,000 files < 300 ms warm", a["warm"] < 0.300),
            ("one month from 10,000 files < 1.0 s cold", a["cold"] < 1.0),
        ]
    if "startup" in r:
        st = r["startup"]
        print(
            f"start-up: digest --help {st['digest_help'] * 1000:.0f} ms, python -c pass {st['python_pass'] * 1000:.0f} ms"
        )
        checks.append(("digest --help within 0.3 s of bare python", st["digest_help"] - st["python_pass"] < 0.3))
    print()
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(r, indent=2))


def report_archives(archives: dict, ms) -> list[tuple[str, bool]]:
    columns = (
        "cold_incremental", "cold_all", "warm_incremental", "warm_incremental_edited", "warm_incremental_edited_forget",
        "warm_all", "scan",
    )  # fmt: skip
    print(
        f"\n{'earlier':>8} "
        + " ".join(f"{c.replace('warm_incremental_', 'warm_').replace('_incremental', '_incr'):>12}" for c in columns)
    )
    for earlier, row in archives.items():
        print(f"{earlier:>8} " + " ".join(f"{ms(row[c]):>12}" for c in columns))
    print(
        "(ms, median, in-process; 'edited': one entry of the month changed before each build; 'edited_forget': the\n"
        " same, with the process's memory of the content-cache files and issues dropped first, as in a new process)"
    )
    print(
        "core speed: "
        + ", ".join(f"{e} months {row['spin']:.2f} s" for e, row in archives.items())
        + " (0.39 s at its fastest here)"
    )
    for earlier, row in archives.items():
        print(
            f"CPU, {earlier} earlier months: warm incremental {row['warm_incremental_cpu'] * 1000:.1f} ms, "
            f"edited {row['warm_incremental_edited_cpu'] * 1000:.1f} ms"
        )
    checks = []
    if "12" in archives:
        a = archives["12"]
        print(
            f"\nwhole process, 12 earlier months: digest build {a['digest_edited'] * 1000:.0f} ms with an entry edited "
            f"({a['digest_edited_cpu'] * 1000:.0f} ms CPU), {a['digest_unchanged'] * 1000:.0f} ms unchanged; "
            f"naive chain {a['naive'] * 1000:.0f} ms ({a['naive_cpu'] * 1000:.0f} ms CPU)"
        )
        print(
            f"before rendering: {a['process_to_rendering'] * 1000:.0f} ms in all (imports {a['imports'] * 1000:.0f}, "
            f"config {a['config'] * 1000:.0f}, scan {a['scan'] * 1000:.1f})"
        )
        checks += [
            ("incremental build, 12 earlier months < 50 ms", a["warm_incremental"] < 0.050),
            ("... with an entry of the month edited", a["warm_incremental_edited"] < 0.050),
            ("whole digest build process <= naive chain", a["digest_unchanged"] <= a["naive"]),
            ("... with an entry of the month edited", a["digest_edited"] <= a["naive"]),
        ]
    if "120" in archives:
        b = archives["120"]
        checks.append(("incremental build, 120 earlier months < 80 ms", b["warm_incremental"] < 0.080))
        checks.append(("... with an entry of the month edited", b["warm_incremental_edited"] < 0.080))
    return checks


if __name__ == "__main__":
    main()
