"""`digest status --json`: the figures `digest status` prints, as one JSON document, after real sends.

The issue goes through a real SMTP server (aiosmtpd) that refuses one reader; a real Postfix DSN for
another lands in a Maildir and `digest bounces` records it; the workers are real rows in the store,
one of them a sender whose lease lapsed without a stop (a dead process)."""

from __future__ import annotations

import json
import mailbox
from datetime import datetime

from bounce_support import Sent, report
from delivery_support import write_project

from digest.config import load_config
from digest.store import open_store, workers

KEYS = {"generated_at", "month", "subscribers", "issues", "workers"}
ISSUE_KEYS = {"key", "subject", "state", "built_at", "started_at", "finished_at", "deliveries", "rate_per_second"}
ISSUE_KEYS |= {"eta_seconds", "after", "failures"}


def status(cli, root, *args: str) -> dict:
    result = cli(root, "status", "--json", *args)
    assert result.code == 0, result.output
    return json.loads(result.out)


def moment(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert value.endswith("Z") and parsed.utcoffset().total_seconds() == 0
    return parsed


def test_before_any_send_the_document_has_every_key_and_zeros(project, cli):
    document = status(cli, project.root)
    assert set(document) == KEYS
    assert document["month"] is None and document["issues"] == []
    assert document["subscribers"] == {"active": 0, "pending": 0, "unsubscribed": 0, "bounced": 0, "total": 0}
    assert document["workers"] == {"running": 0, "list": []}
    moment(document["generated_at"])


def test_after_a_real_smtp_send_with_a_refusal_and_a_later_bounce(tmp_path, cli, smtp_server):
    smtp_server.recorder.faults.rcpt["gone@example.org"] = "550 5.1.1 <gone@example.org>: no such user"
    root = write_project(tmp_path / "site", smtp_port=smtp_server.port)
    for address, name in [
        ("ann@example.org", "Ann"),
        ("zoe@example.org", "Zoë 读者 — قارئ 📬"),
        ("gone@example.org", ""),
    ]:
        assert cli(root, "subscribers", "add", address, *(["--name", name] if name else [])).code == 0
    sent = cli(root, "send")
    assert sent.code == 1 and sent.out.startswith("2025-02: sent 2, retried 0, failed 1"), sent.output

    ann = next(m for m in smtp_server.messages if m.rcpt_tos == ["ann@example.org"])
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(report("postfix", Sent("ann@example.org", ann.mail_from, ann.message_id, str(ann.message["Subject"]))))
    read = cli(root, "bounces", "--maildir", str(tmp_path / "bounces"))
    assert read.code == 0 and read.out.startswith("recorded: 1 hard bounce;"), read.output

    document = status(cli, root)
    assert set(document) == KEYS
    assert document["subscribers"] == {"active": 1, "pending": 0, "unsubscribed": 0, "bounced": 2, "total": 3}
    (issue,) = document["issues"]
    assert set(issue) == ISSUE_KEYS
    assert issue["key"] == "2025-02" and issue["state"] == "finished" and issue["subject"].startswith("Link Archive")
    assert issue["deliveries"] == {
        "total": 3, "sent": 2, "queued": 0, "in_flight": 0, "failed": 1, "skipped": 0, "resent_after_crash": 0,
        "remaining": 0,
    }  # fmt: skip
    assert issue["after"] == {"hard_bounces": 1, "soft_bounces": 0, "complaints": 0, "unsubscribed": 0}
    assert [f["address"] for f in issue["failures"]] == ["gone@example.org"]
    assert "550" in issue["failures"][0]["error"]
    assert isinstance(issue["rate_per_second"], (int, float)) and issue["rate_per_second"] >= 0
    assert issue["eta_seconds"] is None  # nothing left to send
    assert moment(issue["built_at"]) <= moment(issue["started_at"]) <= moment(issue["finished_at"])
    assert document["workers"]["running"] == 0

    text = cli(root, "status").out  # the same figures as the text
    assert "2025-02: finished; sent 2, queued 0, in flight 0, failed 1, skipped 0\n" in text
    assert "  after it: 1 hard bounce, 0 soft bounces, 0 complaints, 0 unsubscribed\n" in text
    assert text.startswith("subscribers: 1 active, 0 pending, 0 unsubscribed, 2 bounced\n")

    one = status(cli, root, "--month", "2025-02")
    assert one["month"] == "2025-02" and [i["key"] for i in one["issues"]] == ["2025-02"]
    missing = cli(root, "status", "--json", "--month", "2024-01")
    assert missing.code == 1 and missing.err == "error: 2024-01 has not been sent\n" and missing.out == ""


def test_a_queued_issue_shows_what_is_left_and_a_lapsed_worker_shows_as_stopped(project, cli):
    project.copy_shipped()
    for n in range(3):
        assert cli(project.root, "subscribers", "add", f"reader{n}@example.com").code == 0
    queued = cli(project.root, "send", "--queue-only")
    assert queued.code == 0, queued.output
    store = open_store(load_config(project.toml))
    try:
        live = workers.register(store, lease=600)
        dead = workers.register(store, lease=-1)  # its lease ran out without a stop: the process died
    finally:
        store.close()

    document = status(cli, project.root)
    (issue,) = document["issues"]
    assert issue["state"] == "sending"
    assert issue["deliveries"]["queued"] == 3 and issue["deliveries"]["remaining"] == 3
    assert issue["deliveries"]["total"] == 3 and issue["deliveries"]["sent"] == 0
    assert issue["eta_seconds"] is None  # no rate yet to estimate from
    listed = {w["id"]: w for w in document["workers"]["list"]}
    assert document["workers"]["running"] == 1 and set(listed) == {live, dead}
    assert listed[live]["state"] == "running" and listed[live]["lease_lapsed"] is False
    assert listed[dead]["state"] == "stopped" and listed[dead]["lease_lapsed"] is True
    assert moment(listed[dead]["lease_until"]) < moment(document["generated_at"]) < moment(listed[live]["lease_until"])
    assert all(isinstance(listed[i][k], int) for i in listed for k in ("pid", "claimed", "sent", "failed"))
    text = cli(project.root, "status").out
    assert "workers: 1 running\n" in text and f"  #{live} " in text and f"  #{dead} " not in text

    drained = cli(project.root, "worker", "--once")
    assert drained.code == 0, drained.output
    done = status(cli, project.root)["issues"][0]
    assert done["state"] == "finished" and done["deliveries"]["sent"] == 3 and done["deliveries"]["remaining"] == 0
    assert len(project.emls()) == 3
