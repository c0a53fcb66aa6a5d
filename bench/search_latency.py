"""Search latency on PostgreSQL: 100,000 stored messages, 100 queries, p50 and p99.

    .venv/bin/python -m bench.search_latency [--messages 100000] [--queries 100]

Starts a one-worker cluster (deploy/cluster.py: PostgreSQL, Redis, Daphne, nginx) in a
temporary directory, stores the messages straight into the database (10 rooms, 2 of them
private; bodies of 6 to 14 words from a 5,000-word vocabulary), then times the same
queries two ways: GET /api/search/ on the worker (HTTP, auth, the query, JSON: what a user
waits for) and the search function alone inside Django (the database's share). Writes
bench/results/search.json and prints the table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from deploy.cluster import Cluster

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "search.json"

FILL = """
import random, json
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from chat.domain import services
from chat.models import Membership, Message, Room
rng = random.Random(7)
vocab = json.loads({vocab!r})
User = get_user_model()
owner = User.objects.create_user("searcher", password="search-pass-phrase-1")
outsider = User.objects.create_user("outsider", password="search-pass-phrase-1")
rooms = []
for i in range(10):
    room = Room.objects.create(slug=f"s{{i}}", name=f"s{{i}}", private=i < 2)
    Membership.objects.create(room=room, user=owner, last_read=0)
    rooms.append(room)
total, batch, now = {messages}, 5000, timezone.now()
seqs = {{r.pk: 0 for r in rooms}}
for start in range(0, total, batch):
    rows = []
    for _ in range(min(batch, total - start)):
        room = rooms[rng.randrange(len(rooms))]
        seqs[room.pk] += 1
        body = " ".join(rng.choice(vocab) for _ in range(rng.randint(6, 14)))
        rows.append(Message(room=room, seq=seqs[room.pk], version=seqs[room.pk], user=owner, body=body, created=now))
    Message.objects.bulk_create(rows)
for room in rooms:
    Room.objects.filter(pk=room.pk).update(last_seq=seqs[room.pk], last_version=seqs[room.pk])
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")
print(json.dumps({{"token": services.token_create(user=owner)[1], "outsider": services.token_create(user=outsider)[1],
                  "stored": Message.objects.count()}}))
"""

TIME_DB = """
import json, time
from django.contrib.auth import get_user_model
from chat.domain import search
user = get_user_model().objects.get(username="searcher")
out = []
for q in json.loads({queries!r}):
    t = time.perf_counter()
    results, more = search.search(user=user, q=q)
    out.append([(time.perf_counter() - t) * 1000, len(results)])
print(json.dumps(out))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(5000)})
    # Single words, two-word ANDs and a quoted phrase now and then: what people type.
    queries = []
    for i in range(args.queries):
        words = rng.sample(vocab, 2)
        queries.append(words[0] if i % 3 == 0 else f"{words[0]} {words[1]}" if i % 3 == 1 else f'"{words[0]}"')
    with tempfile.TemporaryDirectory(prefix="chat-search-bench-") as tmp, Cluster(Path(tmp), workers=1) as cluster:
        started = time.monotonic()
        filled = json.loads(cluster.manage("shell", "--no-startup", "-c",
                                           FILL.format(vocab=json.dumps(vocab), messages=args.messages)
                                           ).strip().splitlines()[-1])
        fill_s = time.monotonic() - started
        db = json.loads(cluster.manage("shell", "--no-startup", "-c", TIME_DB.format(queries=json.dumps(queries))
                                       ).strip().splitlines()[-1])
        http_ms, hits = [], []
        port = cluster.worker_ports[0]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Host": f"localhost:{cluster.https_port}", "X-Forwarded-Proto": "https",
                   "Authorization": f"Bearer {filled['token']}"}
        from urllib.parse import urlencode

        for q in queries:
            t = time.perf_counter()
            conn.request("GET", "/api/search/?" + urlencode({"q": q}), headers=headers)
            response = conn.getresponse()
            body = json.loads(response.read())
            http_ms.append((time.perf_counter() - t) * 1000)
            assert response.status == 200, body
            hits.append(len(body["results"]))
        conn.close()
    result = {
        "messages": filled["stored"], "queries": len(queries), "fill_s": round(fill_s, 1),
        "http_ms": {"p50": round(statistics.median(http_ms), 2), "p99": round(percentile(http_ms, 0.99), 2),
                    "max": round(max(http_ms), 2)},
        "db_ms": {"p50": round(statistics.median(t for t, _ in db), 2),
                  "p99": round(percentile([t for t, _ in db], 0.99), 2), "max": round(max(t for t, _ in db), 2)},
        "results_per_query": {"median": statistics.median(hits), "zero": sum(1 for h in hits if h == 0)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"search over {result['messages']:,} messages on PostgreSQL, {len(queries)} queries:")
    print(f"  GET /api/search/  p50 {result['http_ms']['p50']} ms  p99 {result['http_ms']['p99']} ms")
    print(f"  the query alone   p50 {result['db_ms']['p50']} ms  p99 {result['db_ms']['p99']} ms")
    print(f"  results per query: median {result['results_per_query']['median']}, "
          f"{result['results_per_query']['zero']} with none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
