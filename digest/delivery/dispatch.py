"""Claim, pace, send, record: each active subscriber gets each issue exactly once.

A `Sender` is one worker: a lease in the store and N connections, each with its own
adapter. A connection claims a batch, then for each delivery in id order: compose,
wait for its rate slot, send, and record the outcome before the next send. So after a
crash at most one message per connection has an unknown outcome; `workers.reap` finds
it and it is resent with the same Message-ID.
"""

from __future__ import annotations

import functools
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from digest.config import Config
from digest.delivery import make_adapter
from digest.delivery.base import CommitGate, MailAdapter, NotSent, OutgoingMessage, SendResult, SendStatus
from digest.delivery.message import Composer, Recipient, Recipients
from digest.errors import DigestError, LeaseLost
from digest.render.email import RenderedEmail
from digest.store import DeliveryStatus, Store, deliveries, workers
from digest.store.deliveries import Claim, Outcome

log = logging.getLogger(__name__)
# A sender's lease lasts [delivery] lease_seconds (30 by default); it is renewed every sixth of
# that, and a sender stops completing messages a tenth of it before the lease could run out.
PAUSE_AFTER_DEFERRALS = 5  # consecutive temporary failures on one connection before it backs off


@dataclass
class RunStats:
    """Counters for one run; updated by every connection thread under `lock`."""

    sent: int = 0
    retried: int = 0  # temporary failures that will be tried again
    failed: int = 0  # permanent failures, or temporary ones past max attempts
    resent_unknown: int = 0  # outcome unknown after a crash: resent with the same Message-ID
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, outcome: Outcome) -> None:
        with self.lock:
            if outcome.status == DeliveryStatus.SENT:
                self.sent += 1
            elif outcome.status == DeliveryStatus.FAILED:
                self.failed += 1
            else:
                self.retried += 1
            self.resent_unknown += outcome.claim.unknown_outcome

    def snapshot(self) -> RunStats:
        with self.lock:
            return replace(self, lock=threading.Lock())


@dataclass(frozen=True)
class RetryPolicy:
    """The one place that decides what a send's result means for its delivery: sent, tried again
    later (with exponential backoff and jitter, never sooner than the service's Retry-After), or
    failed for good (rejected, or deferred `max_attempts` times)."""

    max_attempts: int
    backoff: float  # seconds before the 2nd attempt; doubles each time

    @classmethod
    def from_config(cls, config: Config) -> RetryPolicy:
        return cls(config.delivery.max_attempts, config.delivery.retry_backoff)

    def outcome(self, claim: Claim, result: SendResult) -> Outcome:
        """What to record for `claim` after this attempt's `result`."""
        attempts, message_id = claim.attempts + 1, result.message_id
        if result.status == SendStatus.SENT:
            return Outcome(claim, DeliveryStatus.SENT, message_id)
        if result.status == SendStatus.REJECTED:
            return Outcome(claim, DeliveryStatus.FAILED, message_id, result.detail, bounce=result.bounce)
        if attempts >= self.max_attempts:
            detail = f"gave up after {attempts} attempts: {result.detail}"
            return Outcome(claim, DeliveryStatus.FAILED, message_id, detail)
        delay = max(self.backoff * (2 ** (attempts - 1)) * random.uniform(0.8, 1.2), result.retry_after or 0.0)
        return Outcome(claim, DeliveryStatus.QUEUED, message_id, result.detail, retry_in=delay)


class Pacer:
    """A shared rate limit across connections: slots 1/rate seconds apart on the monotonic clock."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(self.next, now)
            self.next = slot + self.interval
        if slot > now:
            stop.wait(slot - now)


class Sender:
    """One worker's lease and connections. Use as a context manager; `stop` ends it gracefully."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        adapter: str | None = None,
        connections: int | None = None,
        stop: threading.Event | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
    ):
        self.config = config
        self.store = store
        self.adapter = adapter or config.delivery.adapter
        self.connections = connections or (config.smtp.connections if self.adapter == "smtp" else 1)
        self.stop = stop or threading.Event()
        self.on_progress = on_progress or (lambda stats: None)
        self.policy = RetryPolicy.from_config(config)
        self.pacer = Pacer(config.smtp.rate if self.adapter == "smtp" else 0.0)
        self.recipients = Recipients(config)
        self.batches = itertools.count(1)
        self.stats = RunStats()
        self.lease = config.delivery.lease_seconds
        self.worker_id = 0
        self._lease_until = 0.0  # monotonic: no message is completed after this unless the lease is renewed
        self._lease_lost = False
        self._done = threading.Event()
        self._halt = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> Sender:
        workers.reap(self.store)
        asked = time.monotonic()
        self.worker_id = workers.register(self.store, self.lease)
        self._lease_until = asked + self.lease * 0.9
        bounce_after = self.config.delivery.bounce_after
        self.group_commit = _GroupCommit(self.store, self.connections, self.worker_id, bounce_after)
        self._beat = threading.Thread(target=self._heartbeat, name="digest-heartbeat", daemon=True)
        self._beat.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._beat.join()
        self.group_commit.close()
        workers.stop(self.store, self.worker_id, self.stats.sent, self.stats.failed)

    def _heartbeat(self) -> None:
        last_reap = time.monotonic()
        while not self._done.wait(self.lease / 6):
            try:
                asked = time.monotonic()  # the database's lease runs from no earlier than this
                if workers.heartbeat(self.store, self.worker_id, self.lease, self.stats.sent, self.stats.failed):
                    self._lease_until = asked + self.lease * 0.9
                else:
                    log.error("worker %d: its lease was taken over; stopping to avoid double sends", self.worker_id)
                    self._lease_lost = True
                    self.stop.set()  # the lease is gone for good: this Sender must not go on
                if time.monotonic() - last_reap > self.lease:
                    workers.reap(self.store)
                    last_reap = time.monotonic()
            except DigestError as exc:  # a locked or unreachable database: keep trying until the lease is gone
                log.warning("heartbeat failed: %s", exc)

    def send_issue(self, issue_id: int, issue_key: str, email: RenderedEmail) -> RunStats:
        """Send until nothing of this issue is ready or waiting for a retry, or until stopped."""
        composer = Composer(email, self.config)
        self._halt = threading.Event()  # this call's stop: set by `stop` or by a connection's failure
        self._error = None
        threads = [
            threading.Thread(target=self._guarded, args=(issue_id, issue_key, composer), name=f"digest-conn-{n}")
            for n in range(self.connections)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # a timed join keeps the main thread free for signals
                if self.stop.is_set():
                    self._halt.set()
                thread.join(0.2)
        if self._error is not None:
            raise self._error
        return self.stats.snapshot()

    def check_lease(self) -> None:
        """LeaseLost unless this worker certainly still holds its lease: called right before each
        message is completed (the final '.'), so a worker paused past its lease (SIGSTOP, a stalled
        VM, a slow heartbeat) completes nothing once another may have taken its claims over."""
        if self._lease_lost or time.monotonic() >= self._lease_until:
            self._lease_lost = True
            self.stop.set()
            raise LeaseLost(
                f"worker {self.worker_id}: its lease ran out (last renewed more than {self.lease * 0.9:.0f} s ago); "
                "stopping before completing another message"
            )

    def _guarded(self, issue_id: int, issue_key: str, composer: Composer) -> None:
        try:
            self._connection(issue_id, issue_key, composer)
        except BaseException as exc:  # the first failure stops every connection, then re-raises in send_issue
            if self._error is None:
                self._error = exc
            self._halt.set()

    def _connection(self, issue_id: int, issue_key: str, composer: Composer) -> None:
        """One connection: claim a batch, send it in id order, each outcome recorded before the next commits."""
        gate = _ConnectionGate(self)
        with make_adapter(self.config, self.adapter) as transport:
            if transport.batch_limit > 1:
                self._batches(transport, issue_id, issue_key, composer, gate)
                return
            ahead = _ComposeAhead(self, composer, issue_key)
            try:
                deferrals = 0
                while not self._halt.is_set():
                    gate.settle()  # a new batch starts only when the last is fully recorded
                    batch = self._claim(issue_id, next(self.batches), self.config.delivery.batch_size)
                    if batch is None:
                        return
                    for index, (claim, composed) in enumerate(ahead.messages(batch)):
                        if self._halt.is_set():
                            gate.settle()
                            deliveries.release(self.store, self.worker_id, [c.id for c in batch[index:]])
                            return
                        result, outcome = self._send_one(transport, claim, composed, gate)
                        gate.settle()
                        gate.expect(self.group_commit.submit(outcome))
                        deferrals = deferrals + 1 if result.status == SendStatus.DEFERRED else 0
                        if deferrals >= PAUSE_AFTER_DEFERRALS:  # the server struggles: slow down, keep attempts
                            self._halt.wait(min(30.0, 0.2 * deferrals))
            finally:
                ahead.close()
                gate.settle()

    def _batches(
        self, transport: MailAdapter, issue_id: int, issue_key: str, composer: Composer, gate: _ConnectionGate
    ) -> None:
        """For a service that takes many messages per call (Postmark's batch endpoint): claim one call's
        worth, hand it over whole once the previous call's outcomes are recorded, record these. A claim
        batch numbered below zero tells `workers.reap` that all of it may have been sent: after a crash
        that one call is resent, with the same Message-IDs, and counted as resent."""
        limit = min(self.config.delivery.batch_size, transport.batch_limit)
        try:
            while not self._halt.is_set():
                gate.settle()
                batch = self._claim(issue_id, -next(self.batches), limit)
                if batch is None:
                    return
                if not batch:
                    continue
                try:
                    results = self._send_batch(transport, composer, issue_key, batch, gate)
                except NotSent:  # refused whole (a wrong key): these were never handed over, nor resent as such
                    deliveries.release(self.store, self.worker_id, [c.id for c in batch])
                    raise
                gate.settle()
                for claim, result in results:
                    gate.expect(self.group_commit.submit(self._outcome(claim, result)))
                self.on_progress(self.stats)
        finally:
            gate.settle()

    def _send_batch(
        self, transport: MailAdapter, composer: Composer, issue_key: str, batch: Sequence[Claim], gate: CommitGate
    ) -> list[tuple[Claim, SendResult]]:
        composed: list[tuple[Claim, OutgoingMessage]] = []
        results: dict[int, SendResult] = {}
        for claim in batch:
            message = self._compose(composer, issue_key, claim)
            if isinstance(message, SendResult):
                results[claim.id] = message
            else:
                composed.append((claim, message))
        if composed:
            for (claim, _), result in zip(composed, transport.send_batch([m for _, m in composed], gate), strict=True):
                results[claim.id] = result
        return [(claim, results[claim.id]) for claim in batch]

    def _recipient(self, claim: Claim, issue_key: str) -> Recipient:
        return self.recipients.make(
            issue_key, claim.email, name=claim.name, subscriber_id=claim.subscriber_id, delivery_id=claim.id
        )

    def _compose(self, composer: Composer, issue_key: str, claim: Claim) -> Composed:
        """The claim's message, or the rejection to record when it can't be composed (the preflight makes that
        unreachable for config and content)."""
        recipient = self._recipient(claim, issue_key)
        try:
            return composer.compose(recipient)
        except (ValueError, UnicodeError) as exc:
            return SendResult(recipient.message_id, SendStatus.REJECTED, f"the message can't be composed: {exc}")

    def _send_one(
        self, transport: MailAdapter, claim: Claim, composed: Composed, gate: CommitGate
    ) -> tuple[SendResult, Outcome]:
        if isinstance(composed, SendResult):
            result = composed
        else:
            self.pacer.wait(self._halt)
            result = transport.send(composed, gate)
        outcome = self._outcome(claim, result)
        self.on_progress(self.stats)
        return result, outcome

    def _claim(self, issue_id: int, number: int, limit: int) -> list[Claim] | None:
        """The next batch of ready deliveries; [] after waiting for a retry to come due; None when
        nothing of the issue is left to send."""
        batch = deliveries.claim(self.store, issue_id, self.worker_id, number, limit)
        if batch:
            return batch
        due = deliveries.next_due(self.store, issue_id)
        if due is None:
            return None
        self._halt.wait(min(max(due, 0.05), 1.0))
        return []

    def _outcome(self, claim: Claim, result: SendResult) -> Outcome:
        """Turn one result into the outcome to record, and count it."""
        outcome = self.policy.outcome(claim, result)
        self.stats.count(outcome)
        if result.status != SendStatus.SENT:
            log.info("%s %s: %s", result.status, claim.email, result.detail)
        return outcome


class _ConnectionGate(CommitGate):
    """One connection's commit gate: a message completes only once the connection's previous outcome is
    recorded (`settle`) and the worker still holds its lease (`Sender.check_lease`)."""

    def __init__(self, sender: Sender):
        self.sender = sender
        self.pending: list[Future[None]] = []  # this connection's outcomes not yet known to be recorded

    def expect(self, recorded: Future[None]) -> None:
        """An outcome handed to the group commit: the next message waits for it."""
        self.pending.append(recorded)

    def settle(self) -> None:
        """Block until every outcome of this connection is recorded (raising what recording raised)."""
        while self.pending:
            self.sender.group_commit.wait(self.pending.pop())

    def ready(self) -> bool:
        return all(f.done() for f in self.pending)

    def commit(self) -> None:
        self.settle()
        self.sender.check_lease()


Composed = OutgoingMessage | SendResult  # a message to send, or the rejection to record instead


class _ComposeAhead:
    """A connection's messages in claim order; on a send's only connection, each signed one is composed while
    the one before is sent.

    Composing is all but free unsigned; signed, it is one RSA signature (about 0.2 ms), during which
    `cryptography` lets go of the GIL. A lone connection mostly waits on the socket while a message goes out
    (its data, then the server's reply), so the next message's signature is made in that wait, on a thread
    of its own (bench/send.py --dkim: 1.5x one bare signature per message -> 0.6-0.9x). With several
    connections, the others fill that wait already, and a thread each only adds switching (1.3x -> 1.7x).
    Composing has no side effects: a message composed but not sent (the send halted) is dropped, and its
    claim released like the others."""

    def __init__(self, sender: Sender, composer: Composer, issue_key: str):
        self.compose = functools.partial(sender._compose, composer, issue_key)
        ahead = composer.signer is not None and sender.connections == 1
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="digest-compose") if ahead else None

    def messages(self, batch: Sequence[Claim]) -> Iterator[tuple[Claim, Composed]]:
        if self.pool is None:
            for claim in batch:
                yield claim, self.compose(claim)
            return
        if not batch:
            return
        following = self.pool.submit(self.compose, batch[0])
        for index, claim in enumerate(batch):
            current = following
            if index + 1 < len(batch):
                following = self.pool.submit(self.compose, batch[index + 1])
            yield claim, current.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class _GroupCommit:
    """One thread records the outcomes of every connection, many per transaction.

    A flush happens when every connection has an outcome waiting, or as soon as one
    connection needs its previous outcome durable (it is at its commit gate). So with one
    connection each record overlaps the next message's transfer, and with several, one
    database round trip carries several messages' outcomes.
    """

    def __init__(self, store: Store, width: int, owner: int, bounce_after: int):
        self.recorder = deliveries.Recorder(store, owner, bounce_after)
        self.width = width
        self.pending: list[tuple[Outcome, Future[None]]] = []
        self.demand = 0
        self.closing = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="digest-recorder", daemon=True)
        self.thread.start()

    def submit(self, outcome: Outcome) -> Future[None]:
        """Queue an outcome for the next flush; the future is done once it is recorded."""
        future: Future[None] = Future()
        with self.cond:
            self.pending.append((outcome, future))
            self.cond.notify()
        return future

    def wait(self, future: Future[None]) -> None:
        """Block until `future`'s outcome is recorded (raising what recording raised)."""
        if not future.done():
            with self.cond:
                self.demand += 1
                self.cond.notify()
            try:
                future.result()
            finally:
                with self.cond:
                    self.demand -= 1
        future.result()

    def _run(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(
                    lambda: self.closing or (self.pending and (self.demand or len(self.pending) >= self.width))
                )
                items, self.pending = self.pending, []
                if not items and self.closing:
                    return
            try:
                self.recorder.record([outcome for outcome, _ in items])
            except BaseException as exc:  # every waiting connection sees the failure
                for _, future in items:
                    future.set_exception(exc)
                continue
            for _, future in items:
                future.set_result(None)

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.thread.join()
        self.recorder.close()


def run_worker(
    config: Config,
    store: Store,
    *,
    adapter: str | None = None,
    stop: threading.Event,
    once: bool = False,
    poll: float = 2.0,
    on_progress: Callable[[RunStats], None] | None = None,
) -> RunStats:
    """`digest worker`: send whatever any issue has queued, until stopped (or, with `once`, until idle)."""
    from digest.delivery import preflight
    from digest.render.email import RenderedEmail

    refused: dict[int, list[str]] = {}  # issue id -> what its preflight found (checked once per issue)
    with Sender(config, store, adapter=adapter, stop=stop, on_progress=on_progress) as sender:
        while not stop.is_set():
            work = deliveries.issues_with_work(store)
            for issue_id in work:
                stored = deliveries.get_issue(store, issue_id=issue_id)
                if stored is None:  # (deliveries reference their issue: it can't be gone)
                    continue
                email = RenderedEmail.from_stored(stored.key, stored.subject, stored.html, stored.text)
                problems = refused.get(issue_id)
                if problems is None:
                    problems = refused[issue_id] = [str(p) for p in preflight.problems(email, config)]
                    for problem in problems:
                        log.error("worker: %s is not sent: %s", stored.key, problem)
                if problems:
                    continue
                try:
                    sender.send_issue(issue_id, stored.key, email)
                except LeaseLost as exc:  # another worker has (or may have) this one's claims: stop for good
                    log.error("worker: %s", exc)
                    stop.set()
                    break
                except DigestError as exc:  # e.g. the SMTP server is down: give the claims back, try later
                    log.error("worker: sending %s failed: %s; retrying in %.0f s", stored.key, exc, poll * 15)
                    workers.requeue_own(store, sender.worker_id)
                    stop.wait(poll * 15)
                    break
                deliveries.finish_if_done(store, issue_id)
            if all(refused.get(issue_id) for issue_id in work):  # nothing queued that may be sent
                if once:
                    break
                stop.wait(poll)
        return sender.stats.snapshot()
