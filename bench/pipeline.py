"""The pipeline's stages on synthetic months: collect, render email, render feeds, write site.

    .venv/bin/python bench/pipeline.py

Generates realistic months (titles, URLs, two or three paragraphs of Markdown commentary
per entry) of 30, 300 and 3,000 entries, and an archive of 10,000 entry files, then
measures in-process after warm-up (median and best of several repeats), and the start-up
time of `digest --help` next to `python -c pass`. Results also go to bench/results/pipeline.json.
"""

from __future__ import annotations

import json
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

from digest import collect  # noqa: E402
from digest.config import load_config  # noqa: E402
from digest.content import commentary_tree  # noqa: E402
from digest.files import write_atomic  # noqa: E402
from digest.render.email import render_email  # noqa: E402
from digest.render.feed import render_feeds  # noqa: E402
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
    toml = (root / "digest.toml").read_text().replace('templates = "templates"', f'templates = "{REPO / "templates"}"')
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


def collect_from_archive(root: Path, month: date, repeats: int) -> tuple[float, float]:
    config = load_config(root / "digest.toml")
    cache = config.var_dir / "cache" / "content.pickle"
    cache.unlink(missing_ok=True)
    started = time.perf_counter()
    collect.load_archive(config).issue(month)
    cold = time.perf_counter() - started
    warm, _, _ = timed(lambda: collect.load_archive(config).issue(month), repeats)
    return cold, warm


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


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    month = date(2025, 3, 1)
    results: dict[str, object] = {}
    try:
        for size in (30, 300, 3000):
            root = base / f"m{size}"
            root.mkdir()
            make_project(root, [(month, size)])
            print(f"month of {size:,} entries ...", flush=True)
            results[str(size)] = stages(root, month, repeats=7 if size < 3000 else 3)
        root = base / "archive"
        root.mkdir()
        months = [(date(2017 + i // 12, i % 12 + 1, 1), 100) for i in range(100)]  # 100 months x 100 = 10,000 files
        make_project(root, months)
        print("archive of 10,000 entry files ...", flush=True)
        cold, warm = collect_from_archive(root, months[50][0], repeats=5)
        results["archive_10000"] = {"cold": cold, "warm": warm}
        help_seconds, python_seconds = startup()
        results["startup"] = {"digest_help": help_seconds, "python_pass": python_seconds}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(results)


def report(r: dict) -> None:
    ms = lambda seconds: f"{seconds * 1000:8.1f}"  # noqa: E731
    print(
        f"\n{'entries':>8} {'collect':>8} {'email':>8} {'feeds':>8} {'site':>8} {'total':>8}  (ms, median; email HTML KB)"
    )
    for size in ("30", "300", "3000"):
        s = r[size]
        print(
            f"{size:>8} {ms(s['collect'])} {ms(s['render_email'])} {ms(s['render_feeds'])} {ms(s['write_site'])} {ms(s['total'])}   {s['email_kb']:.0f} KB"
        )
    a, st = r["archive_10000"], r["startup"]
    print(
        f"\ncollect one month of a 10,000-file archive: {a['warm'] * 1000:.1f} ms warm, {a['cold'] * 1000:.0f} ms cold (first run, no cache)"
    )
    print(
        f"start-up: digest --help {st['digest_help'] * 1000:.0f} ms, python -c pass {st['python_pass'] * 1000:.0f} ms"
    )
    checks = [
        ("30 entries collected, rendered, written < 50 ms", r["30"]["total"] < 0.050),
        ("300 entries < 150 ms", r["300"]["total"] < 0.150),
        ("3,000 entries within 12x of 300 (linear)", r["3000"]["total"] <= 12 * r["300"]["total"]),
        ("one month from 10,000 files < 300 ms", a["warm"] < 0.300),
        ("digest --help within 0.3 s of bare python", st["digest_help"] - st["python_pass"] < 0.3),
    ]
    print()
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
