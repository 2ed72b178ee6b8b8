"""Load on the web app: a bounded generator sends concurrent subscribe, confirm and unsubscribe
requests for overlapping addresses to a real `digest serve`. No 5xx, no lost or duplicated rows."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from delivery_support import digest

from digest import tokens
from digest.config import load_config
from digest.store import open_store
from digest.store import subscribers as subs

pytestmark = pytest.mark.slow

REQUESTS = 600
CLIENTS = 16
ADDRESSES = [f"load{n}@example.com" for n in range(40)]
SECRET = "load-secret"
ARTIFACTS = Path(__file__).parent / "artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(make_project):
    port = free_port()
    project = make_project(extra="\n[web]\nsubscribe_limit = 100000\nsubscribe_ip_limit = 100000\n")
    toml = project / "digest.toml"
    toml.write_text(
        toml.read_text().replace('base_url = "https://links.example.com/"', f'base_url = "http://127.0.0.1:{port}/"')
    )
    digest(project, "build", check=True)
    env = {**os.environ, "DIGEST_SECRET_KEY": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "-q", "serve", "--no-scheduler", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("digest serve did not start: " + process.stdout.read().decode())
    yield project, base
    process.terminate()
    process.wait(timeout=30)


async def one_client(base: str, jobs: asyncio.Queue, ids: dict[str, int], results: list) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        page = await client.get("/")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        while True:
            try:
                action, address = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            subject = tokens.TokenSubject(address, ids.get(address))
            if action != "subscribe" and subject.subscriber_id is None:
                action = "subscribe"
            started = time.perf_counter()
            if action == "subscribe":
                response = await client.post("/subscribe", data={"email": address, "csrf_token": csrf})
            elif action == "confirm":
                response = await client.get(f"/confirm/{tokens.make_token(SECRET, 'confirm', subject)}")
            else:
                token = tokens.make_token(SECRET, "unsubscribe", subject)
                response = await client.post(
                    f"/unsubscribe/{token}",
                    content=b"List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
            code = response.status_code
            if action == "confirm" and code == 400 and "older than your unsubscribe" in response.text:
                code = "raced an unsubscribe"  # a confirm link made before another client's unsubscribe landed
            results.append((action, address, code, time.perf_counter() - started))


async def generate(base: str, store) -> list:
    rng = random.Random(2025)
    jobs: asyncio.Queue = asyncio.Queue()
    for _ in range(REQUESTS):  # a fixed number of requests: the generator stops by itself
        jobs.put_nowait((rng.choice(["subscribe", "subscribe", "confirm", "unsubscribe"]), rng.choice(ADDRESSES)))
    results: list = []
    ids: dict[str, int] = {}

    async def learn_ids() -> None:  # confirm/unsubscribe need the row id a subscribe created
        while not jobs.empty():
            for address in ADDRESSES:
                if address not in ids:
                    found = await asyncio.to_thread(subs.get, store, address)
                    if found:
                        ids[address] = found.id
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(learn_ids())
    await asyncio.gather(*(one_client(base, jobs, ids, results) for _ in range(CLIENTS)))
    watcher.cancel()
    return results


def test_concurrent_subscribe_confirm_unsubscribe(server):
    project, base = server
    store = open_store(load_config(project / "digest.toml"))
    started = time.perf_counter()
    results = asyncio.run(generate(base, store))
    elapsed = time.perf_counter() - started
    assert len(results) == REQUESTS
    statuses = {code for *_, code, _ in results}
    assert statuses <= {200, "raced an unsubscribe"}, [(a, addr, c) for a, addr, c, _ in results if c != 200]
    unsubscribed = {address for action, address, *_ in results if action == "unsubscribe"}
    assert {address for _, address, code, _ in results if code != 200} <= unsubscribed
    subscribed = {address for action, address, code, _ in results if action == "subscribe" and code == 200}
    rows = list(subs.iterate(store))
    emails = [row.email for row in rows]
    assert len(emails) == len(set(emails))  # no duplicated rows
    assert subscribed <= set(emails)  # no lost rows
    latencies = sorted(seconds for *_, seconds in results)
    report = {
        "requests": REQUESTS, "clients": CLIENTS, "seconds": round(elapsed, 2), "requests_per_second": round(REQUESTS / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1), "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "by_action": {a: sum(1 for r in results if r[0] == a) for a in ("subscribe", "confirm", "unsubscribe")},
        "database": store.dialect,
    }  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"load-{store.dialect}.json").write_text(json.dumps(report, indent=2))
    print(f"\nload on the web app ({store.dialect}): {report}")
    store.close()
