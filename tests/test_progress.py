"""The send's progress: the total this run has to send, the rate and the time left."""

from __future__ import annotations

import io
from dataclasses import dataclass

from delivery_support import add_subscribers, write_project

from digest import progress, publish
from digest.config import load_config


@dataclass
class Stats:
    sent: int
    retried: int = 0
    failed: int = 0


def test_the_log_line_shows_count_of_total_rate_and_time_left(monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    stream = io.StringIO()
    with progress.SendProgress("2025-02", stream=stream) as bar:
        bar.set_total(1000)
        bar.started -= 10  # ten seconds in
        bar.update(Stats(sent=300))
    line = stream.getvalue().strip()
    assert line.startswith("2025-02: 300 of 1000 sent, 0 retried, 0 failed (30 msg/s, about 0m2") and "left" in line


def test_send_reports_the_number_it_has_to_send_before_it_starts(tmp_path):
    root = write_project(tmp_path / "p")
    add_subscribers(root, 7)
    config = load_config(root / "digest.toml")
    totals = []
    report = publish.send(config, publish.render(config), on_total=totals.append)
    assert totals == [7] and report.stats.sent == 7
    again = []
    publish.send(config, publish.render(config), on_total=again.append)
    assert again == [0]  # everyone has it: nothing left to send
