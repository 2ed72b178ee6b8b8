"""`digest links check`: dead links with file and line, permanent redirects (and --fix-redirects),
retries, per-host limits, the cache in var/, and `[check] links` in `check --month` and the monthly job.
Every request goes to a real server on 127.0.0.1 (tests/web_pages.py)."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta

import pytest
from conftest import site_settings
from web_pages import Site

from digest.jobs import log_links
from digest.links import Limits, LinkStatus, check_urls

QUICK = {
    "links_timeout": 2,
    "links_retries": 0,
}  # a hung server costs 2 s (a loaded machine answers the rest well within), a 500 one request


@pytest.fixture
def web():
    site = Site().start()
    yield site
    site.stop()


@pytest.fixture
def linked(new_project, web):
    """A project whose February links point at the local site, one per kind of answer."""

    def make(**check: object) -> object:
        settings = site_settings()
        settings["check"] = {**QUICK, **check}
        project = new_project(settings=settings)
        for name in ("ok", "gone", "broken", "moved", "moved-308", "found", "see-other", "temporary",
                     "head-refused", "moved-then-found", "hang"):  # fmt: skip
            project.entry(name, url=f"{web.url}/{name}")
        project.entry("nowhere", url="https://nowhere.invalid/post")
        project.entry("march", url=f"{web.url}/gone-in-march", date="2025-03-03")
        return project

    return make


def test_dead_links_and_permanent_moves_are_listed_with_file_and_line(linked, web, cli):
    project = linked()
    result = cli(project.root, "links", "check", "--month", "2025-02")
    assert result.code == 1
    lines = result.out.splitlines()
    url = web.url
    assert f"dead: content/2025/02/gone.md:3: {url}/gone: 404 Not Found (checked just now)" in lines
    assert f"      archived copies: https://web.archive.org/web/*/{url}/gone" in lines
    assert f"dead: content/2025/02/broken.md:3: {url}/broken: 500 Internal Server Error (checked just now)" in lines
    assert f"dead: content/2025/02/hang.md:3: {url}/hang: timed out after 2 s (checked just now)" in lines
    [dns] = [line for line in lines if line.startswith("dead: content/2025/02/nowhere.md:3: https://nowhere.invalid/")]
    assert "DNS lookup failed" in dns
    assert f"moved: content/2025/02/moved.md:3: {url}/moved -> {url}/ok (checked just now)" in lines
    assert f"moved: content/2025/02/moved-308.md:3: {url}/moved-308 -> {url}/ok-2 (checked just now)" in lines
    # only the permanent part of a chain is the new address: 301 to /found, which 302s on
    assert f"moved: content/2025/02/moved-then-found.md:3: {url}/moved-then-found -> {url}/found (checked just now)" in lines  # fmt: skip
    assert lines[-1] == "12 links in 2025-02: 4 dead, 3 moved (0 from the cache)"
    for quiet in ("ok.md", "found.md", "see-other.md", "temporary.md", "head-refused.md", "march.md"):
        assert f"/{quiet}:" not in result.out  # fine, or temporary redirects followed, or not this month
    assert (web.requests[("HEAD", "/head-refused")], web.requests[("GET", "/head-refused")]) == (1, 1)
    assert web.count("/gone-in-march") == 0  # March's link was not asked


def test_the_whole_archive_without_month(linked, web, cli):
    result = cli(linked().root, "links", "check")
    assert result.out.splitlines()[-1] == "13 links in the archive: 5 dead, 3 moved (0 from the cache)"
    assert web.count("/gone-in-march") == 1


def test_a_month_of_good_links_exits_0(new_project, web, cli):
    settings = site_settings()
    settings["check"] = QUICK
    project = new_project(settings=settings)
    project.entry("one", url=f"{web.url}/ok")
    project.entry("two", url=f"{web.url}/found")
    result = cli(project.root, "links", "check", "--month", "2025-02")
    assert (result.code, result.out) == (0, "2 links in 2025-02: 0 dead, 0 moved (0 from the cache)\n")


def test_fix_redirects_rewrites_only_the_url_value(new_project, web, cli):
    settings = site_settings()
    settings["check"] = QUICK
    project = new_project(settings=settings)
    original = (
        "---\r\n"
        "# a comment the writer keeps\r\n"
        'title: "Déjà vu — 東京 🚀 שלום"\r\n'
        f"url:   '{web.url}/moved'   # was shared on a forum\r\n"
        "date: 2025-02-10\r\n"
        "tags: [a,   b]\r\n"
        "---\r\n"
        "\r\n"
        f"Commentary that mentions {web.url}/moved, which stays as written.\r\n"
    ).encode()
    path = project.write("2025/02/odd-layout.md", original)
    plain = project.entry("plain", url=f"{web.url}/moved-308")
    temporary = project.entry("temporary", url=f"{web.url}/temporary")
    temporary_before = temporary.read_bytes()
    result = cli(project.root, "links", "check", "--month", "2025-02", "--fix-redirects")
    assert result.code == 0
    assert f"rewritten: content/2025/02/odd-layout.md:4: {web.url}/moved -> {web.url}/ok" in result.out
    assert path.read_bytes() == original.replace(
        f"url:   '{web.url}/moved'".encode(), f"url:   '{web.url}/ok'".encode()
    )
    assert f"url: {web.url}/ok-2\n".encode() in plain.read_bytes()
    assert temporary.read_bytes() == temporary_before
    assert cli(project.root, "check").code == 0
    again = cli(project.root, "links", "check", "--month", "2025-02")
    assert again.out.splitlines()[-1].startswith("3 links in 2025-02: 0 dead, 0 moved")


def test_results_are_cached_with_their_age(linked, web, cli):
    project = linked()
    first = cli(project.root, "links", "check", "--month", "2025-02")
    asked = sum(web.requests.values())
    second = cli(project.root, "links", "check", "--month", "2025-02")
    assert sum(web.requests.values()) == asked  # not one request the second time
    assert second.out.splitlines()[-1] == "12 links in 2025-02: 4 dead, 3 moved (12 from the cache)"
    assert second.code == first.code == 1
    cache = project.root / "var" / "cache" / "links.json"
    data = json.loads(cache.read_text())
    entry = data["results"][f"{web.url}/gone"]
    assert entry["status"] == "dead" and entry["detail"] == "404 Not Found"
    checked = datetime.fromisoformat(entry["checked_at"])
    entry["checked_at"] = (checked - timedelta(hours=3)).isoformat()
    cache.write_text(json.dumps(data))
    third = cli(project.root, "links", "check", "--month", "2025-02")
    assert f"{web.url}/gone: 404 Not Found (checked 3 h ago)" in third.out
    assert sum(web.requests.values()) == asked


def test_a_result_older_than_the_maximum_age_is_checked_again(linked, web, cli):
    project = linked(links_max_age_hours=0)
    cli(project.root, "links", "check", "--month", "2025-02")
    before = web.count("/gone")
    result = cli(project.root, "links", "check", "--month", "2025-02")
    assert web.count("/gone") == before + 1
    assert "(0 from the cache)" in result.out


def test_a_damaged_cache_is_ignored(linked, web, cli):
    project = linked()
    cache = project.root / "var" / "cache" / "links.json"
    cache.parent.mkdir(parents=True)
    cache.write_text('{"version": 1, "results": {"x": ')
    result = cli(project.root, "links", "check", "--month", "2025-02")
    assert result.out.splitlines()[-1] == "12 links in 2025-02: 4 dead, 3 moved (0 from the cache)"
    assert json.loads(cache.read_text())["version"] == 1


def test_retries_honour_retry_after_and_give_up_on_a_lasting_5xx(web):
    results = check_urls([f"{web.url}/busy", f"{web.url}/broken"], Limits(timeout=2, retries=2, backoff=0.01))
    assert results[f"{web.url}/busy"].status == LinkStatus.OK
    assert web.requests[("HEAD", "/busy")] == 2  # 429 with Retry-After: 0, then 200
    assert results[f"{web.url}/broken"].status == LinkStatus.DEAD
    assert web.requests[("HEAD", "/broken")] == 3  # the first try and two retries


def test_a_redirect_loop_is_dead(web):
    [result] = check_urls([f"{web.url}/loop"], Limits(timeout=2, retries=0)).values()
    assert (result.status, result.detail) == (LinkStatus.DEAD, "more than 10 redirects")


def test_a_moved_link_whose_target_is_gone_is_dead(web):
    [result] = check_urls([f"{web.url}/moved-to-gone"], Limits(timeout=2, retries=0)).values()
    assert (result.status, result.detail) == (LinkStatus.DEAD, "404 Not Found")


def test_at_most_two_requests_at_a_time_to_one_host(web):
    urls = [f"{web.url}/slow/{n}" for n in range(8)]
    results = check_urls(urls, Limits(timeout=5, retries=0, per_host=2))
    assert {r.status for r in results.values()} == {LinkStatus.OK}
    assert web.most_in_flight == 2


def test_check_month_includes_the_links_when_configured(linked, web, cli):
    project = linked(links=True)
    result = cli(project.root, "check", "--month", "2025-02")
    assert result.code == 0  # warnings: a site that is down must not block the send
    assert f"warning: content/2025/02/gone.md:3: dead link {web.url}/gone: 404 Not Found (checked just now) (replace or remove it; archived copies: https://web.archive.org/web/*/{web.url}/gone)" in result.out.splitlines()  # fmt: skip
    assert f"warning: content/2025/02/moved.md:3: {web.url}/moved moved permanently to {web.url}/ok (digest links check --fix-redirects rewrites it)" in result.out.splitlines()  # fmt: skip


def test_check_month_leaves_the_links_alone_by_default(linked, web, cli):
    project = linked()
    result = cli(project.root, "check", "--month", "2025-02")
    assert "dead link" not in result.out
    assert sum(web.requests.values()) == 0


def test_the_monthly_job_logs_the_link_check(linked, web, caplog):
    project = linked(links=True)
    with caplog.at_level(logging.INFO, logger="digest.jobs"):
        log_links(project.config(), date(2025, 2, 1))
    messages = [r.getMessage() for r in caplog.records if r.name == "digest.jobs"]
    assert f"content/2025/02/gone.md:3: dead link {web.url}/gone: 404 Not Found (checked just now) (replace or remove it; archived copies: https://web.archive.org/web/*/{web.url}/gone)" in messages  # fmt: skip
    assert messages[-1] == "link check of 2025-02: 12 link(s), 4 dead, 3 moved"


def test_the_monthly_job_sends_although_links_are_dead(linked, web, caplog, cli, monkeypatch):
    from digest import jobs
    from digest.store import open_store
    from digest.store.runs import RunStatus

    monkeypatch.setenv("DIGEST_SECRET_KEY", "s")
    project = linked(links=True)
    assert cli(project.root, "subscribers", "add", "reader@example.com").code == 0
    config = project.config()
    store = open_store(config)
    try:
        with caplog.at_level(logging.INFO, logger="digest.jobs"):
            run = jobs.run_scheduled(store, config, date(2025, 2, 1))
    finally:
        store.close()
    assert run is not None and run.status == RunStatus.SUCCEEDED, run
    assert len(project.emls()) == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "digest.jobs"]
    assert "link check of 2025-02: 12 link(s), 4 dead, 3 moved" in logged
    assert logged.index("link check of 2025-02: 12 link(s), 4 dead, 3 moved") < len(logged) - 1  # before the send's


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("links", "yes", "check.links: Input should be a valid boolean (got 'yes')"),
        ("links_max_age_hours", -1, "check.links_max_age_hours: Input should be greater than or equal to 0 (got -1)"),
        ("link", True, "check.link: unknown key (check the spelling; see the README for the keys this table takes)"),
    ],
)
def test_the_check_table_is_strict(new_project, cli, key, value, message):
    settings = site_settings()
    settings["check"] = {key: value}
    project = new_project(settings=settings)
    project.entry("fine")
    result = cli(project.root, "check")
    line = next(n for n, text in enumerate(project.toml.read_text().splitlines(), 1) if text.startswith(f"{key} = "))
    assert (result.code, result.err) == (1, f"error: digest.toml:{line}: {message}\n")
