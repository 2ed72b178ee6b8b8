"""Progress while sending: a bar on a terminal, plain log lines otherwise; graceful Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

LOG_EVERY = 5.0  # seconds between progress lines when not on a terminal


class SendProgress:
    """Renders RunStats updates: count of total, rate and ETA (the total is set once the month is queued)."""

    def __init__(self, issue_key: str, total: int | None = None, stream: Any = None):
        self.issue_key = issue_key
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.last_line = self.started
        self.bar: Any = None

    def __enter__(self) -> SendProgress:
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(f"sending {self.issue_key}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.0f} msg/s"), TimeRemainingColumn(),
                console=Console(file=self.stream), transient=True,
            )  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("send", total=self.total, rate=0.0)
        return self

    def update(self, stats: Any) -> None:
        done = stats.sent + stats.failed
        now = time.monotonic()
        rate = done / max(now - self.started, 1e-6)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=rate)
        elif now - self.last_line >= LOG_EVERY:
            self.last_line = now
            of = f" of {self.total}" if self.total is not None else ""
            eta = f", about {_duration((self.total - done) / rate)} left" if self.total and rate > 0 else ""
            print(
                f"{self.issue_key}: {stats.sent}{of} sent, {stats.retried} retried, {stats.failed} failed "
                f"({rate:.0f} msg/s{eta})",
                file=self.stream,
                flush=True,
            )

    def set_total(self, total: int) -> None:
        """How many messages this run has to send: the bar's total and ETA."""
        self.total = total
        if self.bar is not None:
            self.bar.update(self.task, total=total)

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the event: in-flight messages finish and are recorded, then the send returns."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: the user really means it
            raise KeyboardInterrupt
        print("\nstopping after the messages in flight (Ctrl-C again to abort)", file=sys.stderr, flush=True)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
