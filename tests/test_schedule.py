"""The monthly job: real schedulers (in-process and `digest serve`), a real SQLite database, a real SMTP server.

Triggers fire a few seconds ahead in the site's time zone (America/New_York); lease and renew times are
shortened in-process so hand-overs take seconds, not minutes.
"""

from __future__ import annotations

import calendar
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from delivery_support import digest
from schedule_support import (
    SITE_TZ,
    Serve,
    Site,
    call_with_timeout,
    daily_at,
    month_key,
    schedule_table,
    sleep_until,
    soon,
    wait_until,
)
from smtp_sink import free_port

from digest import jobs, schedule
from digest.collect import month_of
from digest.config import load_config
from digest.errors import ConfigError, StoreError
from digest.schedule import JOB_ID, SchedulerService, due_time, next_runs
from digest.store import runs as run_log

BERLIN = ZoneInfo("Europe/Berlin")
LEASE = 2.0
RENEW = 0.2


@pytest.fixture(autouse=True)
def short_leases(monkeypatch):
    monkeypatch.setattr(schedule, "LEASE_SECONDS", LEASE)
    monkeypatch.setattr(schedule, "RENEW_SECONDS", RENEW)
    monkeypatch.setenv("DIGEST_SECRET_KEY", "test-secret")
    monkeypatch.delenv("DIGEST_DATABASE_URL", raising=False)


@pytest.fixture
def make_site(tmp_path, smtp_server):
    made: list[Site] = []

    def make(schedule: str = "", *, smtp_port: int | None = None, delivery: str = "") -> Site:
        site = Site(
            tmp_path / f"site{len(made)}", smtp_port=smtp_port or smtp_server.port, schedule=schedule, delivery=delivery
        )
        made.append(site)
        return site

    yield make
    for site in made:
        site.close()


@pytest.fixture
def services():
    """SchedulerService instances on a site, stopped at the end whatever happens."""
    started: list[SchedulerService] = []

    def start(site: Site, holder: str) -> SchedulerService:
        service = SchedulerService(site.config, site.config_path, holder=holder)
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        if service._thread.is_alive():
            service.stop()


def wait_active(service: SchedulerService, timeout: float = 5.0) -> SchedulerService:
    wait_until(lambda: service.active, timeout, f"scheduler {service.holder} to start")
    return service


def next_run(service: SchedulerService) -> datetime:
    return service.scheduler.get_job(JOB_ID).next_run_time


def fire_wait(fire: datetime, extra: float = 15.0) -> float:
    """Seconds to wait for a run at `fire` to finish."""
    return max((fire - datetime.now(UTC)).total_seconds(), 0) + extra


def messages_by_recipient(smtp_server) -> Counter:
    return smtp_server.recorder.by_recipient()


# -- a due job publishes exactly once --------------------------------------------------------------


@pytest.mark.slow
def test_a_due_job_publishes_the_fire_times_month_exactly_once(make_site, services, smtp_server):
    fire = soon(2.5)
    site = make_site(daily_at(fire))
    site.add_entry(fire)  # the month of the fire time has an entry; the shipped content is February 2025
    readers = site.add_readers(4)
    service = wait_active(services(site, "solo"))
    assert next_run(service) == fire
    assert site.lease()[0] == "solo"

    wait_until(site.finished_runs, fire_wait(fire), "the scheduled run to finish")
    key = month_key(fire)
    assert messages_by_recipient(smtp_server) == Counter({a: 1 for a in readers})
    assert {m.message["Subject"] for m in smtp_server.messages} == {f"Link Archive: {fire:%B %Y}"}
    [run] = site.runs()
    assert (run.kind, run.month, run.dedupe, run.status) == ("scheduled", key, f"scheduled:{key}", "succeeded")
    assert run.detail == "sent 4, retried 0, failed 0, skipped 0 already sent"
    assert (run.sent, run.retried, run.failed) == (4, 0, 0)
    assert run.started_at >= fire.astimezone(UTC) and run.finished_at is not None
    # the site, the feeds and the email files were written for that month
    output = site.root / "output"
    page = output / "site" / f"{fire:%Y}" / f"{fire:%m}" / "index.html"
    assert f"The Link For {fire:%B %Y}" in page.read_text()
    assert f"https://example.org/{key}/link" in (output / "site" / "feed.xml").read_text()
    assert (output / "email" / f"{key}.html").is_file() and (output / "email" / f"{key}.txt").is_file()
    # the job moved on to tomorrow: nothing more happens today
    assert next_run(service) == fire + timedelta(days=1)  # the same local time tomorrow
    assert len(smtp_server.messages) == 4 and len(site.runs()) == 1


# -- missed runs and restarts --------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_missed_while_down_runs_once_after_a_restart_and_never_again(make_site, services, smtp_server, caplog):
    caplog.set_level(logging.INFO)
    first = soon(2.5)
    # three fire times in a row, all missed while no scheduler runs: coalesced into one run
    seconds = ",".join(str((first + timedelta(seconds=n)).second) for n in range(3))
    site = make_site(schedule_table(day="*", hour="*", minute="*", second=seconds))
    site.add_entry(first)
    readers = site.add_readers(3)

    before = wait_active(services(site, "before"))
    assert next_run(before) == first
    before.stop()
    assert datetime.now(UTC) < first, "the first scheduler must stop before the fire time"
    assert site.lease() is None  # a clean stop hands the lease back at once
    assert site.stored_jobs() == [(JOB_ID, first.timestamp())]  # the job and its next run survive in the database

    sleep_until(first + timedelta(seconds=3))  # all three fire times pass with nobody scheduling
    assert site.runs() == [] and smtp_server.messages == []

    caplog.clear()
    after = wait_active(services(site, "after"))

    def executed() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name.startswith("apscheduler.executors") and "executed successfully" in r.getMessage()
        ]

    wait_until(executed, 10, "the missed run")
    time.sleep(0.5)  # uncoalesced, the other two missed fire times would run right after it
    assert len(executed()) == 1, caplog.messages  # coalesced: one run for three missed fire times
    key = month_key(first)
    [run] = site.runs()
    assert (run.kind, run.month, run.status) == ("scheduled", key, "succeeded")
    assert messages_by_recipient(smtp_server) == Counter({a: 1 for a in readers})
    assert next_run(after) > datetime.now(UTC)
    after.stop()

    # started again, with a trigger that fires again this month: the run dedupe stops a second publish
    again_at = soon(1.5)
    site.set_schedule(daily_at(again_at))
    caplog.clear()
    again = wait_active(services(site, "again"))
    assert next_run(again) == again_at  # a changed trigger is rescheduled
    wait_until(
        lambda: any("already ran" in r.getMessage() for r in caplog.records),
        fire_wait(again_at, 10),
        "the second firing",
    )
    assert f"the scheduled publish of {key} already ran; not running it again" in caplog.messages
    assert [r.id for r in site.runs()] == [run.id]
    assert messages_by_recipient(smtp_server) == Counter({a: 1 for a in readers})


@pytest.mark.slow
def test_a_run_missed_beyond_the_grace_time_is_not_published(make_site, services, smtp_server, caplog):
    caplog.set_level(logging.INFO)
    fire = soon(2)
    site = make_site(daily_at(fire, misfire_grace_hours=0.0005))  # 1.8 s
    site.add_entry(fire)
    site.add_readers(2)
    before = wait_active(services(site, "before"))
    assert next_run(before) == fire
    before.stop()
    assert datetime.now(UTC) < fire

    sleep_until(fire + timedelta(seconds=2.5))  # past the fire time and its grace
    caplog.clear()
    after = wait_active(services(site, "after"))
    missed = wait_until(
        lambda: [r for r in caplog.records if "was missed by" in r.getMessage()],
        5,
        "APScheduler to drop the missed run",
    )
    assert missed[0].levelno == logging.WARNING and "monthly publish" in missed[0].getMessage()
    assert next_run(after) == fire + timedelta(days=1)  # the same local time tomorrow
    # the job itself checks the grace time too: run now, it publishes nothing
    schedule.run_monthly(str(site.config_path))
    assert "the monthly job ran outside its grace time; nothing to publish" in caplog.messages
    assert site.runs() == [] and smtp_server.messages == []
    assert not (site.root / "output").exists()


# -- one scheduler per database --------------------------------------------------------------------


@pytest.mark.slow
def test_two_schedulers_on_one_database_deliver_once_and_hand_over_when_the_lease_expires(
    make_site, services, smtp_server, monkeypatch
):
    fire = soon(2.5)
    site = make_site(daily_at(fire))
    site.add_entry(fire)
    readers = site.add_readers(5)
    pair = {name: services(site, name) for name in ("north", "south")}

    holder = wait_until(
        lambda: next((n for n, s in pair.items() if s.active), None), 5, "one scheduler to hold the lease"
    )
    other = "south" if holder == "north" else "north"
    while datetime.now(UTC) < fire:  # up to the fire time, only the holder runs a scheduler
        assert site.lease()[0] == holder
        assert pair[holder].active and not pair[other].active
        time.sleep(0.1)
    wait_until(site.finished_runs, 10, "the scheduled run")
    assert messages_by_recipient(smtp_server) == Counter({a: 1 for a in readers})
    [run] = site.runs()
    assert (run.kind, run.status, run.month) == ("scheduled", "succeeded", month_key(fire))

    # the holder loses the database (its renewals fail): it stops scheduling; the other waits for the lease to expire
    real_hold = run_log.hold_lease

    def hold(store, name, who, seconds):
        if who == holder:
            raise StoreError("database unreachable (simulated)")
        return real_hold(store, name, who, seconds)

    monkeypatch.setattr(run_log, "hold_lease", hold)
    wait_until(lambda: not pair[holder].active, 2, "the cut-off holder to stop scheduling")
    _, expires = site.lease()
    assert site.lease()[0] == holder and not pair[other].active  # not before the lease expires
    wait_active(pair[other], LEASE + 3)
    taken_at = datetime.now(UTC)
    assert taken_at >= expires
    assert site.lease()[0] == other and not pair[holder].active
    assert pair[other].scheduler.get_job(JOB_ID) is not None  # the same stored job, now run by the other
    assert len(smtp_server.messages) == 5


CRASHY = """
import sys, time
from digest import schedule
from digest.config import load_config
schedule.LEASE_SECONDS, schedule.RENEW_SECONDS = {lease}, {renew}
schedule.SchedulerService(load_config("digest.toml"), "digest.toml", holder="crashy").start()
time.sleep(120)
"""


@pytest.mark.slow
def test_a_killed_holder_keeps_the_lease_until_it_expires_then_another_takes_over(make_site, services):
    site = make_site()
    env = {**os.environ, "DIGEST_SECRET_KEY": "test-secret"}
    crashy = subprocess.Popen([sys.executable, "-c", CRASHY.format(lease=LEASE, renew=RENEW)], cwd=site.root, env=env)
    try:
        wait_until(lambda: (site.lease() or ("",))[0] == "crashy", 10, "the other process to take the lease")
        survivor = services(site, "survivor")
        time.sleep(RENEW * 3)  # the survivor has tried a few times by now
        assert not survivor.active and site.lease()[0] == "crashy"
    finally:
        crashy.kill()  # SIGKILL: no chance to hand the lease back
        crashy.wait(10)
    _, expires = site.lease()
    wait_active(survivor, LEASE + 3)
    assert datetime.now(UTC) >= expires  # not a moment before the dead holder's lease ran out
    assert site.lease()[0] == "survivor"
    assert survivor.scheduler.get_job(JOB_ID).next_run_time == next_runs(site.config, 1)[0]


@pytest.mark.slow
def test_two_digest_serve_processes_elect_one_scheduler_and_publish_once(make_site, smtp_server):
    fire = soon(4)
    site = make_site(daily_at(fire))
    site.add_entry(fire)
    readers = site.add_readers(3)
    serves = [Serve(site.root), Serve(site.root)]
    try:
        for serve in serves:
            serve.wait_up()
        holder = wait_until(site.lease, 5, "a lease holder")[0]
        assert holder in {s.holder for s in serves}
        wait_until(site.finished_runs, fire_wait(fire), "the scheduled run")
        assert site.lease()[0] == holder
    finally:
        codes = [serve.stop(signal.SIGINT) for serve in serves]
    assert messages_by_recipient(smtp_server) == Counter({a: 1 for a in readers})
    [run] = site.runs()
    assert (run.kind, run.status, run.month) == ("scheduled", "succeeded", month_key(fire))
    started = [s for s in serves if "scheduler started (holder" in s.stderr]
    assert [s.holder for s in started] == [holder], [s.stderr for s in serves]
    assert codes == [0, 0], [s.stderr for s in serves]
    assert site.lease() is None  # Ctrl-C: the holder hands the lease back on the way out


def test_sigterm_to_digest_serve_hands_the_scheduler_lease_back(make_site):
    site = make_site()
    serve = Serve(site.root).wait_up()
    try:
        assert wait_until(site.lease, 5, "the lease")[0] == serve.holder
    finally:
        serve.stop(signal.SIGTERM)
    assert site.lease() is None


def test_a_scheduler_that_cannot_start_logs_why_and_retries(make_site, services, caplog):
    caplog.set_level(logging.INFO)
    site = make_site()
    with site.store.write() as conn:  # a job store table APScheduler cannot use
        conn.exec_driver_sql("CREATE TABLE apscheduler_jobs (unrelated INTEGER)")
    service = services(site, "solo")
    wait_until(lambda: "could not start the scheduler; trying again in 0.2 s" in caplog.messages, 5, "the error")
    failure = next(r for r in caplog.records if r.getMessage().startswith("could not start the scheduler"))
    assert failure.levelno == logging.ERROR and "apscheduler_jobs" in str(failure.exc_info[1])
    assert service._thread.is_alive() and not service.active
    assert site.lease()[0] == "solo"
    with site.store.write() as conn:  # repaired: the next renewal starts the scheduler
        conn.exec_driver_sql("DROP TABLE apscheduler_jobs")
    wait_active(service, 3)
    assert site.stored_jobs() == [(JOB_ID, next_runs(site.config, 1)[0].timestamp())]


# -- the job itself ----------------------------------------------------------------------------------


def test_the_run_dedupe_publishes_a_month_once(make_site, smtp_server, caplog):
    caplog.set_level(logging.INFO)
    site = make_site()
    readers = site.add_readers(4)
    config = site.config
    first = jobs.run_scheduled(site.store, config, date(2025, 2, 1))
    assert (first.kind, first.month, first.dedupe, first.status, first.sent) == (
        "scheduled",
        "2025-02",
        "scheduled:2025-02",
        "succeeded",
        4,
    )
    second = jobs.run_scheduled(site.store, config, date(2025, 2, 1))
    assert second is None
    assert "the scheduled publish of 2025-02 already ran; not running it again" in caplog.messages
    assert messages_by_recipient(smtp_server) == Counter({a: 1 for a in readers})
    assert [r.id for r in site.runs()] == [first.id]


def test_an_empty_month_is_skipped_and_logged(make_site, smtp_server, caplog):
    caplog.set_level(logging.INFO)
    # fires every second: the job is always due, for the current month, which has no entries
    site = make_site(schedule_table(day="*", hour="*", minute="*", second="*"))
    site.add_readers(3)
    now = datetime.now(SITE_TZ)
    schedule.run_monthly(str(site.config_path))
    key = month_key(now)
    reason = f"no entries for {key}: nothing to build or send"
    [run] = site.runs()
    assert (run.kind, run.month, run.status, run.detail) == ("scheduled", key, "skipped", reason)
    assert run.finished_at is not None
    skipped = [r for r in caplog.records if r.getMessage() == f"skipping the scheduled publish of {key}: {reason}"]
    assert len(skipped) == 1 and skipped[0].levelno == logging.INFO
    assert smtp_server.messages == []
    assert not (site.root / "output").exists()


@pytest.mark.slow
def test_a_failing_job_is_recorded_and_logged_and_the_service_runs_on(make_site, services, smtp_server, caplog):
    caplog.set_level(logging.INFO)
    site = make_site(schedule_table(day="*", hour="*", minute="*", second="*/2"))
    now = datetime.now(SITE_TZ)
    site.add_entry(now)
    broken = site.add_entry(now, "broken.md", "no front matter here\n")
    readers = site.add_readers(3)
    service = wait_active(services(site, "solo"))

    failed = wait_until(lambda: site.scheduled_runs("failed"), 6, "a failed run")[0]
    broken.unlink()  # the writer fixes the content; the next firing publishes
    key = month_key(now)
    rel = broken.relative_to(site.root)
    assert failed.detail.startswith(f"{rel}:1: no front matter")
    assert failed.detail.endswith("1 problem in content; nothing was written or sent")
    assert failed.finished_at is not None and failed.sent == 0
    assert failed.dedupe is None  # a failed run does not use up the month: the next firing may publish it
    logged = [
        r
        for r in caplog.records
        if r.getMessage().startswith(f"the scheduled publish of {key} failed: {rel}:1: no front matter")
    ]
    assert logged and logged[0].levelno == logging.ERROR
    assert smtp_server.messages == []

    succeeded = wait_until(lambda: site.scheduled_runs("succeeded"), 6, "a later run to publish")
    assert len(succeeded) == 1 and succeeded[0].month == key
    assert service.active and service._thread.is_alive()
    assert messages_by_recipient(smtp_server) == Counter({a: 1 for a in readers})
    assert (site.root / "output" / "site" / f"{now:%Y}" / f"{now:%m}" / "index.html").is_file()


def test_draft_mode_mails_a_preview_and_waits_for_the_manual_send(make_site, smtp_server, caplog):
    caplog.set_level(logging.INFO)
    site = make_site(schedule_table(mode="draft"))
    readers = site.add_readers(3)
    config = site.config
    run = jobs.run_scheduled(site.store, config, date(2025, 2, 1))
    assert (run.kind, run.month, run.status) == ("scheduled", "2025-02", "awaiting-send")
    assert run.detail == "preview sent to 1 of 1; the send waits for POST /admin/send"
    assert run.finished_at is None and run.sent == 0
    assert messages_by_recipient(smtp_server) == Counter({"writer@example.com": 1})  # [delivery] recipients only
    assert smtp_server.messages[0].message["Subject"] == "Link Archive: February 2025"
    assert not (site.root / "output" / "site").exists()
    assert jobs.run_scheduled(site.store, config, date(2025, 2, 1)) is None  # the month's scheduled run happened

    manual = jobs.start_send(site.store, config, date(2025, 2, 1), threading.Event())
    assert (manual.kind, manual.month, manual.status) == ("manual", "2025-02", "running")
    done = wait_until(
        lambda: (r := run_log.get(site.store, manual.id)).status != "running" and r, 10, "the manual send"
    )
    assert (done.status, done.detail) == ("succeeded", "sent 3, retried 0, failed 0, skipped 0 already sent")
    assert messages_by_recipient(smtp_server) == Counter({"writer@example.com": 1, **{a: 1 for a in readers}})
    assert (site.root / "output" / "site" / "2025" / "02" / "index.html").is_file()


def test_a_draft_preview_that_cannot_be_sent_is_recorded_as_failed(make_site, smtp_server):
    site = make_site(schedule_table(mode="draft"), smtp_port=free_port())  # nothing listens there
    site.add_readers(2)
    run = jobs.run_scheduled(site.store, site.config, date(2025, 2, 1))
    assert run is not None and run.status == "failed", run
    assert "cannot connect" in run.detail
    assert [r.status for r in site.runs()] == ["failed"]  # never left "running"
    again = jobs.run_scheduled(site.store, site.config, date(2025, 2, 1))  # the month is not used up: it may be retried
    assert again is not None and again.status == "failed"
    assert smtp_server.messages == []


# -- the `schedule` command and validation ---------------------------------------------------------------


def last_days_at_22(after: datetime, count: int) -> list[datetime]:
    found, year, month = [], after.year, after.month
    while len(found) < count:
        when = datetime(year, month, calendar.monthrange(year, month)[1], 22, tzinfo=SITE_TZ)
        if when > after:
            found.append(when)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def test_digest_schedule_prints_the_next_runs_in_local_time_and_utc(make_site):
    site = make_site()
    now = datetime.now(SITE_TZ)
    result = digest(site.root, "schedule", "--count", "4", check=True)
    expected = [
        "schedule: month=* day=last day_of_week=* hour=22 minute=0 second=0 (America/New_York), mode send, grace 12 h"
    ]
    for when in last_days_at_22(now, 4):
        utc = when.astimezone(UTC)
        expected.append(f"  {when:%Y-%m-%d} 22:00 {when.tzname()} ({utc:%Y-%m-%d %H:%M} UTC): publishes {when:%Y-%m}")
    assert result.stdout.splitlines() == expected


@pytest.mark.parametrize("value", ["0", "1-5", "sun,1"])
def test_numeric_weekdays_are_rejected_with_a_message_about_names(make_site, value):
    site = make_site(schedule_table(day_of_week=value))
    result = digest(site.root, "schedule")
    assert result.returncode == 1 and result.stdout == ""
    line = site.config_path.read_text().splitlines().index(f'day_of_week = "{value}"') + 1
    assert result.stderr == (
        f"error: digest.toml:{line}: schedule.day_of_week: use weekday names (mon, tue, ... sun), not numbers: "
        f"cron counts Sunday as 0, the scheduler Monday (got '{value}')\n"
    )


def test_weekday_names_are_accepted(make_site):
    site = make_site(schedule_table(day="*", day_of_week="mon-fri", hour="9"))
    runs = next_runs(site.config, 7, datetime(2025, 2, 28, 12, tzinfo=SITE_TZ))  # a Friday
    assert [r.strftime("%a %d") for r in runs] == ["Mon 03", "Tue 04", "Wed 05", "Thu 06", "Fri 07", "Mon 10", "Tue 11"]


def test_a_bad_cron_value_is_rejected(make_site):
    site = make_site(schedule_table(hour="25"))
    result = digest(site.root, "schedule")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: digest.toml:")
    assert "not a valid schedule" in result.stderr and "'25'" in result.stderr and "maximum value (23)" in result.stderr


@pytest.mark.parametrize(("key", "value"), [("hour", "25"), ("minute", "x")])
def test_a_bad_cron_value_names_its_key(make_site, key, value):
    site = make_site(schedule_table(**{key: value}))
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    [problem] = caught.value.problems
    line = site.config_path.read_text().splitlines().index(f'{key} = "{value}"') + 1
    assert problem.message.startswith(f"schedule.{key}: ") and problem.line == line, str(problem)


def test_a_tiny_grace_time_still_starts_the_scheduler(make_site, services):
    site = make_site(schedule_table(misfire_grace_hours=0.0001))  # 0.36 s: valid config
    service = wait_active(services(site, "solo"), 3)
    assert service.scheduler.get_job(JOB_ID).misfire_grace_time >= 1


# -- fire times across month ends and DST changes ---------------------------------------------------------


@pytest.fixture
def berlin(make_site):
    """A project in Europe/Berlin with a given [schedule] (loaded config, no scheduler)."""

    def make(**keys):
        site = make_site(schedule_table(**keys))
        site.config_path.write_text(site.config_path.read_text().replace("America/New_York", "Europe/Berlin"))
        return site.config

    return make


def test_the_last_day_of_each_month_across_the_spring_dst_change(berlin):
    config = berlin()  # the default: day = "last", 22:00
    runs = next_runs(config, 4, datetime(2025, 2, 1, tzinfo=BERLIN))
    assert [r.isoformat() for r in runs] == [
        "2025-02-28T22:00:00+01:00",
        "2025-03-31T22:00:00+02:00",
        "2025-04-30T22:00:00+02:00",
        "2025-05-31T22:00:00+02:00",
    ]
    assert [f"{r.astimezone(UTC):%m-%d %H:%M}" for r in runs] == [
        "02-28 21:00",
        "03-31 20:00",
        "04-30 20:00",
        "05-31 20:00",
    ]
    assert [month_of(r, BERLIN) for r in runs] == [date(2025, m, 1) for m in (2, 3, 4, 5)]
    assert next_runs(config, 1, datetime(2028, 2, 1, tzinfo=BERLIN))[0].isoformat() == "2028-02-29T22:00:00+01:00"
    assert next_runs(config, 1, datetime(2025, 10, 1, tzinfo=BERLIN))[0].isoformat() == "2025-10-31T22:00:00+01:00"


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (datetime(2025, 3, 1, 1, 0, tzinfo=BERLIN), "2025-02-28T22:00:00+01:00"),  # 3 h late, after midnight on the 1st
        (datetime(2025, 4, 1, 1, 0, tzinfo=BERLIN), "2025-03-31T22:00:00+02:00"),  # the same in summer time
        (datetime(2025, 11, 1, 1, 0, tzinfo=BERLIN), "2025-10-31T22:00:00+01:00"),
        (datetime(2025, 3, 31, 22, 0, tzinfo=BERLIN), "2025-03-31T22:00:00+02:00"),  # exactly on time
        (datetime(2025, 3, 31, 21, 59, tzinfo=BERLIN), None),  # not yet due, and February's run is past its grace time
    ],
)
def test_a_late_run_maps_to_the_month_it_was_due_for(berlin, now, due):
    found = due_time(berlin(), now)
    assert (found.isoformat() if found else None) == due
    if due:
        assert month_of(found, BERLIN) == date.fromisoformat(due[:8] + "01")


def test_a_late_run_across_the_new_year_publishes_december(make_site):
    config = make_site().config  # America/New_York, last day 22:00
    found = due_time(config, datetime(2027, 1, 1, 1, 0, tzinfo=SITE_TZ))
    assert found.isoformat() == "2026-12-31T22:00:00-05:00" and month_of(found, SITE_TZ) == date(2026, 12, 1)
    assert found.astimezone(UTC).date() == date(2027, 1, 1)  # already January in UTC
    assert due_time(config, datetime(2027, 1, 1, 10, 1, tzinfo=SITE_TZ)) is None  # 12 h 1 min late: past the grace time


@pytest.mark.parametrize(
    ("now", "due"),
    [  # daily at 22:00, grace 12 h: the grace time is counted in real hours, not wall-clock hours
        (
            datetime(2025, 3, 30, 10, 30, tzinfo=BERLIN),
            "2025-03-29T22:00:00+01:00",
        ),  # 11.5 h after (clocks went forward)
        (datetime(2025, 3, 30, 11, 30, tzinfo=BERLIN), None),  # 12.5 h after
        (datetime(2025, 10, 26, 9, 30, tzinfo=BERLIN), None),  # 12.5 h after (clocks went back)
        (datetime(2025, 10, 26, 8, 30, tzinfo=BERLIN), "2025-10-25T22:00:00+02:00"),  # 11.5 h after
    ],
)
def test_the_grace_time_is_real_time_across_dst_changes(berlin, now, due):
    config = berlin(day="*", hour="22")
    found = due_time(config, now)
    assert (found.isoformat() if found else None) == due


def test_hourly_fire_times_pass_the_autumn_dst_change_once_each(berlin):
    config = berlin(day="*", hour="*", minute="30")
    runs = next_runs(config, 6, datetime(2025, 10, 26, 0, 0, tzinfo=BERLIN))
    assert [f"{r.astimezone(UTC):%d %H:%M}" for r in runs] == [
        "25 22:30",
        "25 23:30",
        "26 00:30",
        "26 01:30",
        "26 02:30",
        "26 03:30",
    ]
    # 02:30 comes twice on the wall clock (summer, then winter time); the job's due time is found either way
    found = call_with_timeout(lambda: due_time(config, datetime(2025, 10, 26, 4, 0, tzinfo=BERLIN)))
    assert found.isoformat() == "2025-10-26T03:30:00+01:00"
    in_repeated_hour = datetime(2025, 10, 26, 2, 40, tzinfo=BERLIN, fold=1)  # the second 02:40, 01:40 UTC
    found = call_with_timeout(lambda: due_time(config, in_repeated_hour))
    assert found.astimezone(UTC).isoformat() == "2025-10-26T01:30:00+00:00"


def test_a_fire_time_in_the_spring_gap_runs_an_hour_early_in_utc(berlin):
    config = berlin(day="*", hour="2", minute="30")
    runs = next_runs(config, 3, datetime(2025, 3, 29, 0, 0, tzinfo=BERLIN))
    assert [f"{r.astimezone(UTC):%d %H:%M}" for r in runs] == ["29 01:30", "30 01:30", "31 00:30"]
