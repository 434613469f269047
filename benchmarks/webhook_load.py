"""Load on the webhook service: 1,000 signed Hub events (half of them replays) sent in 10 s to `speat hub webhook`.

The service runs as a subprocess on 127.0.0.1 (one worker), against the test Hub of ``tests/http_servers.py`` in this
process, which holds 100 model repositories with 5 commits each (500 distinct commits; the models are text models, so
the worker screens each job and ignores it: the in-memory queue is read by a worker while the events arrive).
Senders on 16 keep-alive connections post one event every 10 ms; the 500 replays are mixed in at random (seeded).

Printed: acknowledged events per second, response times (median, p99, max; the target is p99 under 100 ms), jobs
created (must equal the distinct commits: replays make none), duplicates recognised, superseded jobs, the service's
memory (resident and peak, from /proc), then how long the worker took to drain the queue.
Timings depend on the machine's load: the load average is printed with them.

    .venv/bin/python benchmarks/webhook_load.py [--events 1000] [--seconds 10] [--senders 16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from http_servers import HubServer  # noqa: E402

from speat_metric.hub.webhook_events import content_update_payload  # noqa: E402

SECRET = "benchmark-webhook-secret-0123456789"
TOKEN = "hf_benchmarkTOKEN0123456789"
REPOSITORIES, COMMITS_PER_REPOSITORY = 100, 5
SPEAT = shutil.which("speat", path=os.path.dirname(sys.executable)) or "speat"


def memory_kib(pid: int) -> dict[str, int]:
    """Resident and peak resident memory of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def start_service(hub: HubServer, work: Path) -> tuple[subprocess.Popen, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HOME=str(work / "hf"), SPEAT_CACHE=str(work / "cache"),
               SPEAT_WEBHOOK_SECRET=SECRET, HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1")
    log = work / "service.log"  # a file, not a pipe: a slow reader must not slow the service down
    process = subprocess.Popen([SPEAT, "hub", "webhook", "--port", "0"],
                               cwd=work, env=env, stderr=log.open("w"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text().splitlines():
            if '"service.listening"' in line:
                url = json.loads(line)["url"]
                with httpx.Client() as client:  # warm up: a few events that make no job
                    for _ in range(5):
                        client.post(f"{url}/webhooks/speat", headers={"X-Webhook-Secret": SECRET},
                                    json=content_update_payload("bench/warm-up", "0" * 40, repo_type="dataset"))
                return process, url
        time.sleep(0.1)
    raise SystemExit(f"the service did not start:\n{log.read_text()}")


def server_side_ms(work: Path, *, after_line: int) -> list[float]:
    """How long the service took for each POST /webhooks/speat logged after `after_line` (its http.request events)."""
    times = []
    for line in (work / "service.log").read_text().splitlines()[after_line:]:
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("event") == "http.request" and entry.get("path") == "/webhooks/speat":
            times.append(entry["ms"])
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (the service's log)")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="speat-webhook-bench-"))
    with HubServer(tokens={TOKEN: "speat-bot"}) as hub:
        config = json.dumps({"model_type": "bert", "hidden_size": 8}).encode()
        commits = []
        for number in range(REPOSITORIES):
            repo_id = f"bench/model-{number}"
            hub.create_repo(repo_id)
            for version in range(COMMITS_PER_REPOSITORY):
                commits.append((repo_id, hub.commit(repo_id, {"config.json": config, "weights.bin": bytes([version])})))
        rng = random.Random(0)
        distinct = rng.sample(commits, options.events // 2)
        distinct.sort(key=commits.index)  # the Hub sends a repository's pushes in order
        # each replay goes somewhere after its original event, as the Hub's redeliveries and replays do
        order = list(distinct)
        for _ in range(options.events - len(distinct)):
            original = rng.randrange(len(distinct))
            order.insert(rng.randrange(order.index(distinct[original]) + 1, len(order) + 1), distinct[original])
        replays = order[len(distinct):]
        bodies = [json.dumps(content_update_payload(repo_id, sha)).encode() for repo_id, sha in order]

        load_before = os.getloadavg()[0]
        process, url = start_service(hub, work)
        idle_memory = memory_kib(process.pid)
        time.sleep(0.5)  # the warm-up's log lines are written
        log_start = len((work / "service.log").read_text().splitlines())
        latencies: list[float] = []
        sent_at: list[float] = []
        answers: list[dict] = []
        lock = threading.Lock()
        interval = options.seconds / len(bodies)
        # Clients made (and connected) before the clock starts: making one costs CPU the service would miss.
        clients = [httpx.Client(timeout=30) for _ in range(options.senders)]
        for client in clients:
            client.get(f"{url}/healthz")

        def sender(number: int) -> None:
            client = clients[number]
            for index in range(number, len(bodies), options.senders):
                delay = start + index * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent = time.perf_counter()
                response = client.post(f"{url}/webhooks/speat", content=bodies[index],
                                       headers={"X-Webhook-Secret": SECRET, "Content-Type": "application/json"})
                elapsed = time.perf_counter() - sent
                with lock:
                    latencies.append(elapsed)
                    sent_at.append(sent - start)
                    answers.append({"status": response.status_code, **response.json()})

        threads = [threading.Thread(target=sender, args=(number,)) for number in range(options.senders)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        loaded_memory = memory_kib(process.pid)

        acknowledged = sum(answer["status"] == 202 for answer in answers)
        created = {answer["job"] for answer in answers if answer["status"] == 202 and not answer["duplicate"]}
        duplicates = sum(answer["status"] == 202 and answer["duplicate"] for answer in answers)
        slowest_first_second = max(latency for latency, sent in zip(latencies, sent_at) if sent < 1.0)
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        status = httpx.get(f"{url}/status").json()
        drain_start = time.perf_counter()
        while status["queued"] or status["running"]:
            time.sleep(0.5)
            status = httpx.get(f"{url}/status").json()
        drained = time.perf_counter() - drain_start
        stored = sum(status[state] for state in ("queued", "running", "done", "ignored", "failed", "superseded"))

        print(f"webhook load: {len(bodies)} signed events ({len(distinct)} distinct commits of {REPOSITORIES} "
              f"repositories, {len(replays)} replays) in {options.seconds:g} s on {options.senders} connections")
        print(f"  machine load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after (the machine may be "
              "shared: times include other work)")
        print(f"  acknowledged:        {acknowledged} of {len(bodies)} in {wall:.2f} s = {acknowledged / wall:.1f}/s")
        print(f"  response time:       median {1000 * statistics.median(latencies):.1f} ms, p99 {1000 * p99:.1f} ms "
              f"(target < 100 ms), max {1000 * latencies[-1]:.1f} ms (slowest in the first second: "
              f"{1000 * slowest_first_second:.1f} ms)")
        server = server_side_ms(work, after_line=log_start)
        print(f"  in the service:      median {statistics.median(server):.1f} ms, p99 "
              f"{server[min(len(server) - 1, int(0.99 * len(server)))]:.1f} ms, max {server[-1]:.1f} ms "
              f"({len(server)} requests, from its logs: the rest is the network and the sending process)")
        print(f"  jobs created:        {len(created)} (distinct commits: {len(distinct)}; "
              f"{'equal' if len(created) == len(distinct) == stored else 'NOT EQUAL'}; in the queue: {stored})")
        print(f"  duplicates answered: {duplicates} (replays sent: {len(replays)})")
        print(f"  superseded:          {status['superseded']} (older queued commits of a repository)")
        print(f"  service memory:      {idle_memory['VmRSS'] / 1024:.0f} MiB idle, {loaded_memory['VmRSS'] / 1024:.0f} "
              f"MiB after the load, peak {loaded_memory['VmHWM'] / 1024:.0f} MiB")
        print(f"  queue drained by 1 worker in {drained:.1f} s after the last event "
              f"({status['ignored']} ignored as text models)")
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    if options.keep:
        print(f"  kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
