"""Serving on loopback: latency, throughput, errors and durability of ``recommender serve``.

1. In process: the time of one item-based recommendation of 100 movies (Gorse publishes
   4.35 ms per call), bare (EASE fold-in and ranking) and as the API computes it (plus the
   store read, reasons, predicted ratings and the JSON body; no list cache), over every
   dataset user.
2. A real server (uvicorn, ``--workers`` processes sharing one SQLite store) on 127.0.0.1,
   loaded by ``--clients`` concurrent keep-alive clients:
   a. ``GET /recommend/{user}?top_n=10`` only (the target: p99 <= 50 ms at 32 clients),
      every list computed (a server started with ``--list-cache-mb 0``);
   b. the same with the server's default list cache (lists kept until the user's ratings
      change), starting empty, with the share of requests the cache answered;
   c. the same load again, the cache now holding the lists of b;
   d. a mix: recommendations for dataset and new users, searches, similar movies,
      predictions, and rating writes (``--write-share``);
   e. writes while the server is killed with SIGKILL; the server restarts on the same
      database, and every acknowledged rating is looked for;
   f. a flood: a server with rate limits (``--rate-limit``) computing every list, 31 clients
      asking for lists at a steady ``--paced`` requests/s each (each from its own loopback
      address, so each is its own client), first alone, then while one more client
      (another address, another process) floods it as fast as 64 connections go with
      fuzzy title matches, sign-ups and lists, in alternating halves; the measured
      clients' p99 with the flood against without.
   Prints p50/p95/p99 latency, requests/s, errors, writes acknowledged vs found.

Loopback only, and bounded: ``--requests`` per phase (at most 100,000) and ``--max-seconds``
per phase (the flood phase: ``--flood-rounds`` of two ``--flood-seconds`` halves). Usage: ``python
benchmarks/serve.py [--dataset ml-latest-small] [--clients 32] [--requests 4000]
[--workers 2]`` (the serve and dev extras installed: ``make install``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

from recommender.serve.server import is_loopback
from recommender.serve.service import ServeConfig, Service

MAX_REQUESTS = 100_000


def percentiles(latencies: list[float]) -> str:
    if not latencies:
        return "no answers"
    p50, p95, p99 = np.percentile(np.asarray(latencies) * 1e3, [50, 95, 99])
    return f"p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  p99 {p99:6.2f} ms"


def per_call(service: Service, n: int = 100) -> None:
    """Part 1: one recommendation of ``n`` movies per dataset user, timed."""
    users = service.histories.user_ids
    model = service.list_model
    bare, full = [], []
    for user in users:
        history = service.history(int(user))
        start = time.perf_counter()
        service.top(history, n)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        service.recommendations(int(user), n, service.stored(int(user)))
        full.append(time.perf_counter() - start)
    print(f"\n1. one item-based recommendation of {n} movies ({model.name}, "
          f"{model.n_items:,} movies, {len(users)} users; Gorse publishes 4.35 ms)")
    print(f"   fold-in + ranking    mean {np.mean(bare) * 1e3:6.2f} ms  {percentiles(bare)}")
    print(f"   as the API does it   mean {np.mean(full) * 1e3:6.2f} ms  {percentiles(full)}  "
          f"(+ store read, reasons, predicted ratings, JSON)")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_server(args, artifacts: Path, database: Path, port: int, *options: str
                 ) -> subprocess.Popen:
    import httpx2 as httpx

    process = subprocess.Popen(
        [sys.executable, "-m", "recommender.cli", "serve", "--dataset", args.dataset,
         "--artifacts", str(artifacts), "--database", str(database), "--host", args.host,
         "--port", str(port), "--workers", str(args.workers), *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited while starting")
        try:
            # Every worker listening (each has its own socket once it has loaded the models),
            # else the first one ready would take every connection of the phase.
            if (httpx.get(f"http://{args.host}:{port}/health", timeout=5).status_code == 200
                    and listening(process, port) >= args.workers):
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    kill_all(process)
    raise SystemExit("the server did not start within 300 s")


def listening(server: subprocess.Popen, port: int) -> int:
    """Sockets of the server's processes listening on ``port``."""
    import psutil

    processes = [psutil.Process(server.pid)]
    processes += processes[0].children(recursive=True)
    return sum(c.status == psutil.CONN_LISTEN and c.laddr.port == port
               for p in processes for c in p.net_connections("tcp"))


def cpu_seconds(server: subprocess.Popen) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the server with its workers, and by this
    process (psutil comes with ipykernel)."""
    import psutil

    processes = [psutil.Process(server.pid)]
    processes += processes[0].children(recursive=True)
    return (sum(sum(p.cpu_times()[:2]) for p in processes), sum(os.times()[:2]))


def measured(server: subprocess.Popen, load: "Load", next_request) -> tuple[float, tuple]:
    """Run ``load`` against ``server``: seconds taken, and CPU seconds of server and generator."""
    before = cpu_seconds(server)
    seconds = asyncio.run(load.run(next_request))
    after = cpu_seconds(server)
    return seconds, (after[0] - before[0], after[1] - before[1])


def kill_all(process: subprocess.Popen) -> None:
    """SIGKILL the server and its workers at once, as a crash would."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


class Connection:
    """One keep-alive HTTP/1.1 connection with the least client work there is: the load
    generator shares the server's cores, and every millisecond it spends is taken from the
    server (CPU per request, measured here: httpx 0.60 ms, aiohttp 0.21 ms, this 0.07 ms)."""

    def __init__(self, host: str, port: int, source: str | None = None):
        self.host, self.port, self.source = host, port, source
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: dict | None = None,
                      key: str | None = None) -> tuple[int, dict[str, str]]:
        """Status and headers (lower-case names) of one exchange; the body is read and
        dropped. ``key``: a user's secret. Raises ``OSError`` or
        ``asyncio.IncompleteReadError`` when the server goes."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(
                self.host, self.port, local_addr=(self.source, 0) if self.source else None)
        reader, writer = self.streams
        payload = b"" if body is None else json.dumps(body).encode()
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{auth}Content-Type: "
                     f"application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                     + payload)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
            await reader.readexactly(int(headers.get("content-length", 0)))
        except BaseException:
            writer.close()
            self.streams = None
            raise
        return int(head[0].split(" ", 2)[1]), headers


class Load:
    """``clients`` keep-alive connections sending ``requests`` requests made by
    ``next_request``; latency per kind, the app's own time, errors, and acknowledged writes."""

    def __init__(self, host: str, port: int, clients: int, requests: int, max_seconds: float,
                 until_disconnected: bool = False, paced: float = 0.0,
                 sources: list[str] | None = None):
        self.host, self.port, self.clients, self.requests = host, port, clients, requests
        self.until_disconnected = until_disconnected
        self.max_seconds = max_seconds
        self.paced = paced  # requests/s per client (0: each sends as soon as answered)
        self.sources = sources  # a loopback source address per client
        self.latency: dict[str, list[float]] = {}
        self.in_app: list[float] = []  # Server-Timing: the app's own time, without queueing
        self.errors: dict[tuple[str, int | str], int] = {}
        self.cache: dict[str, int] = {}  # X-Cache of the answers: hit or miss
        self.acknowledged: dict[tuple[int, int], float] = {}

    async def run(self, next_request) -> float:
        left = iter(range(self.requests))
        deadline = time.monotonic() + self.max_seconds

        async def client(k: int) -> None:
            connection = Connection(self.host, self.port,
                                    self.sources[k] if self.sources else None)
            due = time.monotonic() + (k / self.clients / self.paced if self.paced else 0)
            for _ in left:
                if time.monotonic() > deadline:
                    return
                if self.paced:  # a steady rate: no catching up in bursts after a slow answer
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    due = max(due + 1 / self.paced, time.monotonic())
                kind, method, path, body, *key = next_request()
                start = time.perf_counter()
                try:
                    status, headers = await connection.request(method, path, body, *key)
                    ok = status < 400
                except (OSError, asyncio.IncompleteReadError):
                    ok, status = False, "no answer"
                    if self.until_disconnected:
                        return
                elapsed = time.perf_counter() - start
                if ok:
                    self.latency.setdefault(kind, []).append(elapsed)
                    timing = headers.get("server-timing", "")
                    if timing.startswith("app;dur="):
                        self.in_app.append(float(timing[8:]) / 1e3)
                    if "x-cache" in headers:
                        self.cache[headers["x-cache"]] = self.cache.get(headers["x-cache"], 0) + 1
                    if kind == "write":
                        for r in body["ratings"]:
                            self.acknowledged[(int(path.split("/")[2]), r["movie_id"])] = \
                                r["rating"]
                else:
                    self.errors[kind, status] = self.errors.get((kind, status), 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(self.clients)))
        return time.perf_counter() - start

    def report(self, title: str, seconds: float, cpu: tuple[float, float]) -> None:
        """Print the phase; ``cpu``: CPU seconds the server and this generator spent in it."""
        answered = sum(map(len, self.latency.values()))
        errors = sum(self.errors.values())
        sent = answered + errors
        print(f"\n{title}: {sent:,} requests in {seconds:.1f} s = "
              f"{sent / seconds:,.0f} requests/s, {errors} errors; CPU per request: server "
              f"{cpu[0] / sent * 1e3:.2f} ms, load generator {cpu[1] / sent * 1e3:.2f} ms")
        every = [x for v in self.latency.values() for x in v]
        if len(self.latency) > 1:
            print(f"   {'all':<10} {percentiles(every)}")
        for kind, values in sorted(self.latency.items()):
            print(f"   {kind:<10} {percentiles(values)}  ({len(values):,})")
        print(f"   {'in the app':<10} {percentiles(self.in_app)}  (Server-Timing: the rest of "
              f"the latency is queueing, HTTP and the load generator)")
        if self.errors:
            print("   errors: " + ", ".join(f"{kind} {status} x {n}" for (kind, status), n
                                            in sorted(self.errors.items(), key=str)))
        if self.cache:
            hits, lists = self.cache.get("hit", 0), sum(self.cache.values())
            print(f"   list cache: {hits:,} of {lists:,} lists answered from it "
                  f"({hits / lists:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--requests", type=int, default=4000, help="per phase")
    parser.add_argument("--write-share", type=float, default=0.1)
    parser.add_argument("--max-seconds", type=float, default=120, help="per phase")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paced", type=float, default=10.0,
                        help="requests/s of each measured client in the flood phase")
    parser.add_argument("--flood-seconds", type=float, default=5.0,
                        help="each half of a round of the flood phase")
    parser.add_argument("--flood-rounds", type=int, default=3)
    parser.add_argument("--flood-connections", type=int, default=64)
    parser.add_argument("--flood-rate-limit", type=float, default=20.0,
                        help="the server's --rate-limit in the flood phase")
    args = parser.parse_args()
    if not is_loopback(args.host):
        raise SystemExit(f"--host {args.host}: this benchmark only loads loopback addresses")
    if not (1 <= args.requests <= MAX_REQUESTS and 2 <= args.clients <= 256
            and 0 <= args.write_share <= 1 and 0 < args.max_seconds <= 600
            and 0 < args.paced <= 100 and 0 < args.flood_seconds <= 120
            and 1 <= args.flood_connections <= 64 and 0 < args.flood_rate_limit <= 1000
            and 1 <= args.flood_rounds <= 10):
        raise SystemExit(f"bounds: 1-{MAX_REQUESTS} requests, 2-256 clients, write share 0-1, "
                         f"0-600 s per phase, 0-100 paced requests/s, 0-120 flood seconds, "
                         f"1-64 flood connections, a flood rate limit of 0-1000/s, "
                         f"1-10 flood rounds")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rng = random.Random(args.seed)
    print(f"machine: {os.cpu_count()} cpus, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (shared: timings are inflated "
          f"by other work)")

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    port = free_port(args.host)
    try:
        start = time.perf_counter()
        service = Service.from_config(ServeConfig(dataset=args.dataset,
                                                  artifacts=work / "artifacts",
                                                  database=str(work / "inprocess.sqlite3"),
                                                  list_cache_mb=0))
        print(f"models ready in {time.perf_counter() - start:.1f} s "
              f"({service.list_model.name}: {service.list_model.meta['fit_seconds']:.1f} s fit, "
              f"{service.rating_model.name}: {service.rating_model.meta['fit_seconds']:.2f} s)")
        per_call(service)
        for model in (service.list_model, service.rating_model):
            model.save(work / "artifacts" / model.name)  # the server loads instead of refitting
        users = [int(u) for u in service.histories.user_ids]
        movies = [int(m) for m in service.list_model.items.ids]
        titles = service.catalogue.titles
        del service

        base = f"http://{args.host}:{port}"
        database = work / "store.sqlite3"

        def recommend():
            return "recommend", "GET", f"/recommend/{rng.choice(users)}?top_n=10", None

        server = start_server(args, work / "artifacts", database, port, "--list-cache-mb", "0")
        try:
            load = Load(args.host, port, args.clients, args.requests, args.max_seconds)
            load.report(f"2a. GET /recommend?top_n=10, {args.clients} clients, "
                        f"{args.workers} server worker(s), every list computed (no list cache)",
                        *measured(server, load, recommend))
        finally:
            kill_all(server)
        server = start_server(args, work / "artifacts", database, port)
        try:
            import httpx2 as httpx

            for phase in ("2b. the same with the list cache, starting empty (users drawn at "
                          f"random from {len(users):,})", "2c. again, the cache warm"):
                load = Load(args.host, port, args.clients, args.requests, args.max_seconds)
                load.report(phase, *measured(server, load, recommend))
            created = [httpx.post(f"{base}/users", json={}).json() for _ in range(args.clients)]
            new_users = [c["user_id"] for c in created]
            secrets = {c["user_id"]: c["secret"] for c in created}  # writes need them

            keys = itertools.count()  # every write rates a (user, movie) never rated before

            def write():
                k = next(keys)
                user, movie = new_users[k % len(new_users)], movies[k // len(new_users)]
                body = {"ratings": [{"movie_id": movie, "rating": rng.randrange(1, 11) / 2}]}
                return "write", "PUT", f"/users/{user}/ratings", body, secrets[user]

            def mixed():
                x = rng.random()
                if x < args.write_share:
                    return write()
                x = (x - args.write_share) / max(1 - args.write_share, 1e-9)
                if x < 0.6:
                    user = rng.choice(new_users if rng.random() < 0.3 else users)
                    return "recommend", "GET", f"/recommend/{user}?top_n=10", None
                if x < 0.75:
                    word = rng.choice(titles).split(" ")[0][:6]
                    return "search", "GET", f"/movies?limit=8&search={quote(word)}", None
                if x < 0.9:
                    return "similar", "GET", f"/movies/{rng.choice(movies)}/similar", None
                user, movie = rng.choice(users), rng.choice(movies)
                return "predict", "GET", f"/predict/{user}/{movie}", None

            load = Load(args.host, port, args.clients, args.requests, args.max_seconds)
            load.report(f"2d. mixed, {args.write_share:.0%} writes, {args.clients} clients",
                        *measured(server, load, mixed))
            acknowledged = dict(load.acknowledged)

            killer = Load(args.host, port, args.clients, args.requests, args.max_seconds,
                          until_disconnected=True)

            async def writes_then_kill() -> float:
                task = asyncio.create_task(killer.run(write))
                await asyncio.sleep(2.0)
                kill_all(server)
                return await task

            asyncio.run(writes_then_kill())
            print(f"\n2e. SIGKILL after 2 s of writes: {len(killer.acknowledged):,} acknowledged "
                  f"in that phase")
            acknowledged.update(killer.acknowledged)
        finally:
            kill_all(server)
        server = start_server(args, work / "artifacts", database, port)
        try:
            stored = {}
            for user in new_users:
                for r in httpx.get(f"{base}/users/{user}/ratings").json()["ratings"]:
                    stored[(user, r["movie_id"])] = r["rating"]
            found = sum(stored.get(key) == rating for key, rating in acknowledged.items())
            print(f"   after restart: {found:,} of {len(acknowledged):,} acknowledged ratings "
                  f"found, {len(acknowledged) - found} lost")
        finally:
            kill_all(server)
        flood_phase(args, work, port, users, titles)
    finally:  # about 300 MB of saved models on ml-latest-small, in each folder
        shutil.rmtree(work, ignore_errors=True)


FLOOD_SOURCE = "127.0.0.2"  # the flooding client's address; the measured ones: 127.0.1.x


def flood(host: str, port: int, users: list[int], titles: list[str], connections: int,
          orders, replies, counts) -> None:
    """One client (:data:`FLOOD_SOURCE`), in its own process, that floods for each number of
    seconds ``orders`` hands it (``None`` ends it), as fast as ``connections`` keep-alive
    connections go: misspelt titles to match, sign-ups and lists, in turn. ``counts``: a
    shared array of answers per status class (2xx, 429, other 4xx, 5xx, transport errors);
    ``replies`` gets ``"ready"`` once the process has started and after each flood."""
    rng = random.Random(1)

    def misspelt() -> str:
        title = list(rng.choice(titles).split(" (")[0].lower())
        i = rng.randrange(max(1, len(title) - 1))
        title[i:i + 2] = title[i:i + 2][::-1]
        return "".join(title).replace(" ", "%20")

    async def one(seconds: float) -> None:
        connection = Connection(host, port, FLOOD_SOURCE)
        deadline = time.monotonic() + seconds
        k = 0
        while time.monotonic() < deadline:
            k += 1
            method, path = (("POST", "/users") if k % 3 == 0 else
                            ("GET", f"/predict/{rng.choice(users)}/{misspelt()}") if k % 3 == 1
                            else ("GET", f"/recommend/{rng.choice(users)}?top_n=10"))
            try:
                status, _ = await connection.request(method, path, {} if method == "POST"
                                                     else None)
                counts[0 if status < 300 else 1 if status == 429 else 2 if status < 500
                       else 3] += 1
            except (OSError, asyncio.IncompleteReadError):
                counts[4] += 1

    async def run(seconds: float) -> None:
        await asyncio.gather(*(one(seconds) for _ in range(connections)))

    replies.put("ready")
    while (seconds := orders.get()) is not None:
        asyncio.run(run(seconds))
        replies.put("ready")


def flood_phase(args, work: Path, port: int, users: list[int], titles: list[str]) -> None:
    """Part 2f: the measured clients' /recommend p99 alone and beside a flood, in
    ``--flood-rounds`` alternating halves (so that whatever else the machine does falls on
    both alike)."""
    import multiprocessing

    # Every list computed (no list cache), so both halves cost the same per request.
    server = start_server(args, work / "artifacts", work / "flood.sqlite3", port,
                          "--rate-limit", str(args.flood_rate_limit),
                          "--signups-per-hour", "20", "--list-cache-mb", "0")
    clients = args.clients - 1
    sources = [f"127.0.1.{k + 1}" for k in range(clients)]
    requests = int(clients * args.paced * args.flood_seconds)
    rng = random.Random(args.seed)
    context = multiprocessing.get_context("spawn")
    counts = context.Array("l", 5)
    to_flooder, from_flooder = context.Queue(), context.Queue()
    flooder = context.Process(target=flood, args=(
        args.host, port, users, titles, args.flood_connections, to_flooder, from_flooder,
        counts))

    def recommend():
        return "recommend", "GET", f"/recommend/{rng.choice(users)}?top_n=10", None

    def half() -> tuple[Load, float, tuple]:
        load = Load(args.host, port, clients, requests, args.flood_seconds + 30,
                    paced=args.paced, sources=sources)
        return (load, *measured(server, load, recommend))

    halves: dict[str, list] = {"alone": [], "beside": []}
    try:
        flooder.start()  # started once: a new interpreter's imports would load the machine
        from_flooder.get(timeout=120)
        for _ in range(args.flood_rounds):
            halves["alone"].append(half())
            to_flooder.put(args.flood_seconds + 2.5)
            time.sleep(2.0)  # the flood under way, its burst spent
            halves["beside"].append(half())
            from_flooder.get(timeout=60)
        to_flooder.put(None)
        flooder.join(timeout=30)
    finally:
        flooder.kill()
        kill_all(server)
    title = (f"2f. the flood phase: {clients} clients at {args.paced:g} lists/s each, every list "
             f"computed, rate limit {args.flood_rate_limit:g}/s per client, "
             f"{args.flood_rounds} rounds of {args.flood_seconds:g} s")
    p99 = {}
    for name, runs in halves.items():
        pooled = Load(args.host, port, clients, requests, 0)
        for load, _, _ in runs:
            for kind, values in load.latency.items():
                pooled.latency.setdefault(kind, []).extend(values)
            pooled.in_app += load.in_app
            for kind, n in load.errors.items():
                pooled.errors[kind] = pooled.errors.get(kind, 0) + n
        seconds = sum(run[1] for run in runs)
        cpu = tuple(sum(run[2][i] for run in runs) for i in range(2))
        heading = f"{title}; without the flood" if name == "alone" else "   beside the flood"
        pooled.report(heading, seconds, cpu)
        p99[name] = np.percentile(np.asarray(pooled.latency.get("recommend", [0])) * 1e3, 99)
    sent = sum(counts)
    print(f"   the flood: {sent:,} requests from one client over {args.flood_connections} "
          f"connections in {args.flood_rounds} x {args.flood_seconds + 2.5:g} s: "
          f"{counts[1]:,} refused with 429, {counts[0]:,} answered, {counts[2]:,} other 4xx, "
          f"{counts[3]} 5xx, {counts[4]} transport errors")
    print(f"   measured clients' /recommend p99: {p99['alone']:.1f} ms alone, "
          f"{p99['beside']:.1f} ms beside the flood = {p99['beside'] / p99['alone']:.2f}x "
          f"(target: within 2x)")

if __name__ == "__main__":
    main()
