"""Room fan-out through a channels-redis layer: core RedisChannelLayer vs RedisPubSubChannelLayer.

Each of WORKERS processes adds MEMBERS/WORKERS channels to one group, as Daphne workers do
for the sockets of one room; a sender process group_sends MESSAGES events. Reported per
layer: delivered events/s, loss, and CPU-microseconds per delivered event summed over all
processes (receivers, sender, Redis). Usage:

    python bench/layer_fanout.py [--members 100] [--workers 2] [--messages 500] [--redis-url URL]
"""

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path

LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}


def _layer(kind: str, url: str):
    from django.utils.module_loading import import_string

    config = {"hosts": [url]}
    if kind == "core":
        config.update(capacity=10_000, expiry=60)
    return import_string(LAYERS[kind])(**config)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def receiver(kind, url, group, count, expected, ready, go, results):
    async def main():
        layer = _layer(kind, url)
        channels = [await layer.new_channel() for _ in range(count)]
        for channel in channels:
            await layer.group_add(group, channel)
        ready.release()
        got = 0
        cpu0 = _cpu_seconds()

        async def drain(channel):
            nonlocal got
            for _ in range(expected):
                await layer.receive(channel)
                got += 1

        try:
            await asyncio.wait_for(asyncio.gather(*(drain(c) for c in channels)), timeout=60)
        except TimeoutError:
            pass
        results.put({"got": got, "cpu": _cpu_seconds() - cpu0, "end": time.monotonic()})

    asyncio.run(main())


def redis_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(kind: str, url: str, redis_pid: int | None, members: int, workers: int, messages: int) -> dict:
    group = f"bench-{kind}-{time.monotonic_ns()}"
    ready, go, results = mp.Semaphore(0), mp.Event(), mp.Queue()
    per = members // workers
    procs = [mp.Process(target=receiver, args=(kind, url, group, per, messages, ready, go, results)) for _ in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()

    async def send():
        layer = _layer(kind, url)
        cpu0 = _cpu_seconds()
        start = time.monotonic()
        for n in range(messages):
            await layer.group_send(group, {"type": "room.event", "text": json.dumps({"n": n, "body": "x" * 64})})
        return start, _cpu_seconds() - cpu0

    redis0 = redis_cpu(redis_pid) if redis_pid else 0.0
    start, sender_cpu = asyncio.run(send())
    outs = [results.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    redis_used = (redis_cpu(redis_pid) - redis0) if redis_pid else 0.0
    delivered = sum(o["got"] for o in outs)
    elapsed = max(o["end"] for o in outs) - start
    cpu = sender_cpu + sum(o["cpu"] for o in outs) + redis_used
    return {
        "layer": kind,
        "members": members,
        "workers": workers,
        "messages": messages,
        "expected": members * messages,
        "delivered": delivered,
        "loss": 1 - delivered / (members * messages),
        "delivered_per_s": round(delivered / elapsed),
        "cpu_us_per_delivery": round(cpu / max(delivered, 1) * 1e6, 1),
        "redis_cpu_s": round(redis_used, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-url")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "layer_fanout.json"))
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    redis = None
    url, pid = args.redis_url, None
    if not url:
        from tests.support.redis_server import RedisServer

        redis = RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-")))
        redis.start()
        url, pid = redis.url, redis.process.pid
    try:
        rows = []
        for _ in range(args.repeat):  # interleaved: core, pubsub, core, pubsub, ...
            for kind in LAYERS:
                row = run(kind, url, pid, args.members, args.workers, args.messages)
                print(json.dumps(row))
                rows.append(row)
    finally:
        if redis:
            redis.stop()
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
