"""The monthly job on APScheduler 3: a persistent job store, and one scheduler per database.

APScheduler 3 does not coordinate schedulers that share a job store (each would fire
every job), so a `digest serve` process runs its scheduler only while it holds the
"scheduler" lease in the database. The run log's dedupe key and the delivery claims
guard the rest: a month is published once, each subscriber mailed once.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.collect import month_of
from digest.config import Config, load_config
from digest.errors import DigestError

log = logging.getLogger(__name__)
JOB_ID = "digest-monthly"
JOB_FUNC = "digest.schedule:run_monthly"
LEASE_NAME = "scheduler"
LEASE_SECONDS = 60.0
RENEW_SECONDS = 10.0
STOP = threading.Event()  # set when serve shuts down: a send in progress stops gracefully


def trigger(config: Config):
    from apscheduler.triggers.cron import CronTrigger

    s = config.schedule
    return CronTrigger(
        month=s.month,
        day=s.day,
        day_of_week=s.day_of_week,
        hour=s.hour,
        minute=s.minute,
        second=s.second,
        timezone=config.site.tz,
    )


def fire_times(config: Config, start: datetime):
    """Fire times from `start` on, in the site's time zone (an endless generator)."""
    cron = trigger(config)
    fire = cron.get_next_fire_time(None, start)
    while fire is not None:
        yield fire
        # step in UTC: wall-clock arithmetic drops `fold`, and the repeated hour of a DST change came round forever
        fire = cron.get_next_fire_time(fire, fire.astimezone(UTC) + timedelta(microseconds=1))


def next_runs(config: Config, count: int = 3, now: datetime | None = None) -> list[datetime]:
    times = fire_times(config, now or datetime.now(config.site.tz))
    return [fire for fire, _ in zip(times, range(count), strict=False)]


def due_time(config: Config, now: datetime | None = None) -> datetime | None:
    """The fire time a run at `now` stands for: the latest one not after `now`, within the grace time.

    A run that starts late (the process was down) still publishes the month it was due for.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)  # real time: the grace is real hours across DST changes,
    due = None  # and UTC comparisons respect `fold` (same-zone aware datetimes compare by wall clock)
    for fire in fire_times(config, now - timedelta(hours=config.schedule.misfire_grace_hours)):
        if fire.astimezone(UTC) > now:
            break
        due = fire
    return due


def run_monthly(config_path: str) -> None:
    """The stored job (referenced by name, so it survives restarts): publish the month that is due."""
    from digest import jobs
    from digest.store import open_store

    try:
        config = load_config(config_path)
        due = due_time(config)
        if due is None:
            log.warning("the monthly job ran outside its grace time; nothing to publish")
            return
        store = open_store(config)
        try:
            jobs.run_scheduled(store, config, month_of(due, config.site.tz), STOP)
        finally:
            store.close()
    except DigestError as exc:  # logged with the reason; the scheduler and the process carry on
        log.error("the monthly job failed: %s", exc)


class SchedulerService:
    """Holds the scheduler lease and runs APScheduler only while holding it."""

    def __init__(self, config: Config, config_path: Path, holder: str | None = None):
        self.config = config
        self.config_path = str(Path(config_path).resolve())
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.scheduler = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="digest-scheduler-lease", daemon=True)

    def start(self) -> None:
        STOP.clear()
        self._thread.start()

    def stop(self) -> None:
        STOP.set()
        self._stop.set()
        self._thread.join()

    @property
    def active(self) -> bool:
        return self.scheduler is not None

    def _loop(self) -> None:
        from digest.store import open_store, runs

        store = open_store(self.config)
        try:
            while not self._stop.is_set():
                try:
                    held = runs.hold_lease(store, LEASE_NAME, self.holder, LEASE_SECONDS)
                except DigestError as exc:  # can't renew: assume the lease is lost rather than risk two schedulers
                    log.warning("scheduler lease: %s", exc)
                    held = False
                if held and self.scheduler is None:
                    try:
                        self._start_scheduler()
                    except Exception:  # e.g. an unusable job store: the lease thread must live on and retry
                        log.exception("could not start the scheduler; trying again in %g s", RENEW_SECONDS)
                elif not held and self.scheduler is not None:
                    log.info("scheduler lease lost; this process stops scheduling")
                    self._stop_scheduler()
                self._stop.wait(RENEW_SECONDS)
            self._stop_scheduler()
            runs.release_lease(store, LEASE_NAME, self.holder)
        finally:
            store.close()

    def _start_scheduler(self) -> None:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        grace = max(1, math.ceil(self.config.schedule.misfire_grace_hours * 3600))  # APScheduler wants a positive int
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=_apscheduler_url(self.config.database_url))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
            timezone=self.config.site.tz,
        )
        try:
            scheduler.start(paused=True)  # a run missed while down is still in the store: keep it
            cron, kwargs = trigger(self.config), {"config_path": self.config_path}
            job = scheduler.get_job(JOB_ID)
            if job is None:
                scheduler.add_job(JOB_FUNC, cron, id=JOB_ID, name="monthly publish", kwargs=kwargs)
            elif str(job.trigger) != str(cron) or job.kwargs != kwargs:
                job.modify(kwargs=kwargs)
                job.reschedule(cron)
        except BaseException:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            raise
        scheduler.resume()
        self.scheduler = scheduler
        next_run = scheduler.get_job(JOB_ID).next_run_time
        log.info("scheduler started (holder %s); next monthly run %s", self.holder, next_run)

    def _stop_scheduler(self) -> None:
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)


def _apscheduler_url(url: str) -> str:
    return "postgresql+psycopg://" + url.removeprefix("postgresql://") if url.startswith("postgresql://") else url
