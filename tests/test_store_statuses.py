"""Statuses cross the store boundary as their StrEnums: written from members, read back as members."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import StatementError

from digest.store import DeliveryStatus, SubscriberStatus, deliveries, open_store, runs, subscribers
from digest.store.runs import RunKind, RunStatus


@pytest.fixture
def store(config):
    opened = open_store(config)
    yield opened
    opened.close()


def test_every_status_read_back_is_a_member_of_its_enum(store):
    sub, _ = subscribers.add(store, "zoë@例え.jp", "Zoë — 读者 قارئ 📬")
    found = subscribers.get(store, sub.email)
    assert found is not None and type(found.status) is SubscriberStatus and found.status is SubscriberStatus.ACTIVE
    assert subscribers.counts(store) == {SubscriberStatus.ACTIVE: 1}
    assert all(type(status) is SubscriberStatus for status in subscribers.counts(store))

    issue_id = deliveries.save_issue(store, "2025-02", "Links — février 2025", "<p>读者</p>", "读者")
    deliveries.enqueue(store, issue_id)
    counts = deliveries.counts(store, issue_id)
    assert counts[DeliveryStatus.QUEUED] == 1 and counts[DeliveryStatus.SENT] == 0
    assert {type(key) for key in counts if key != "resent_unknown"} == {DeliveryStatus}

    run = runs.start(store, RunKind.MANUAL, "2025-02")
    assert run is not None and type(run.kind) is RunKind and run.status is RunStatus.RUNNING


def test_a_status_outside_the_vocabulary_is_refused_before_it_is_written(store):
    sub, _ = subscribers.add(store, "reader@example.com")
    with pytest.raises(StatementError, match="'gone' is not a valid SubscriberStatus"):
        subscribers.set_status(store, sub.id, "gone")  # type: ignore[arg-type]
    found = subscribers.get(store, "reader@example.com")
    assert found is not None and found.status is SubscriberStatus.ACTIVE
