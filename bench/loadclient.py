"""The load client: raw asyncio WebSocket connections, run as its own process by bench/run.py.

It writes the HTTP upgrade itself, masks what it sends with a precomputed XOR, and never
JSON-decodes a received frame: a delivery is a text frame holding the phase's marker
(`@@` + tag), and observers read the send time (time.monotonic_ns, system-wide on Linux)
that follows the marker. The same client runs unchanged against every server.

Protocol with the parent: the spec is one JSON object on stdin; each `{"mark": name}` line
on stdout waits for one line back on stdin (the parent snapshots server CPU and RSS there);
the last stdout line is `{"result": {...}}`. Run by hand: `python -m bench.loadclient < spec.json`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import resource
import ssl
import string
import sys
import time
from dataclasses import dataclass, field
from typing import Any

MASK = os.urandom(4)
_MASK_CACHE: dict[int, int] = {}
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
TS_DIGITS = 20
BODY_LEN = 64


def mask_int(n: int) -> int:
    """Return MASK repeated over n bytes, as one big integer (cached per length)."""
    value = _MASK_CACHE.get(n)
    if value is None:
        value = _MASK_CACHE[n] = int.from_bytes((MASK * (n // 4 + 1))[:n], "big")
    return value


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """Encode one masked client frame (RFC 6455 section 5.3)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    masked = (int.from_bytes(payload, "big") ^ mask_int(n)).to_bytes(n, "big") if n else b""
    return header + MASK + masked


def message_payload(marker: bytes, now_ns: int) -> bytes:
    """Build a `message` frame whose body is the marker, the send time and padding."""
    body = marker + b"%020d" % now_ns
    return b'{"type":"message","body":"' + body + b"x" * (BODY_LEN - len(body)) + b'"}'


def percentiles(values: list[int]) -> dict[str, float | None]:
    """Return p50, p99 and max of nanosecond latencies, in milliseconds."""
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))] / 1e6  # noqa: E731
    return {"p50_ms": round(pick(0.50), 3), "p99_ms": round(pick(0.99), 3), "max_ms": round(values[-1] / 1e6, 3)}


@dataclass
class Tally:
    """What the connections count for the current phase: deliveries and observer latencies."""

    marker: bytes = b"@@-"
    delivered: int = 0
    listened: int = 0  # frames with the marker on listener sockets (user sockets), not deliveries
    last_ns: int = 0  # when the latest delivery of this phase arrived
    recent_ns: int = 0  # the latest latency an observer saw
    rx_ns: int = 0  # when any bytes last arrived, whatever the phase
    latencies: dict[str, list[int]] = field(default_factory=dict)

    def reset(self, marker: bytes) -> None:
        """Start counting a new phase, identified by its marker."""
        self.marker, self.delivered, self.last_ns, self.recent_ns, self.latencies = marker, 0, 0, 0, {}
        self.listened = 0


class Conn(asyncio.Protocol):
    """One WebSocket connection: upgrade, frame parsing, pongs, and delivery counting."""

    def __init__(self, client: LoadClient, spec: dict, index: int):
        self.client, self.index = client, index
        self.room: int = spec["room"]
        self.group: str = spec.get("group", "all")
        self.observer: bool = bool(spec.get("observer"))
        # A listener (a user socket) is in no room: it never sends, and what it hears is counted apart.
        self.listener: bool = bool(spec.get("listener"))
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.closed = False
        self.buf = b""
        self.on_own: Any = None  # closed loop: called for each delivery on a sender's socket
        self.on_lost: Any = None  # the storm: called once with the close code when the socket ends
        self.spec = spec
        self.t_upgraded = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.buf + data if self.buf else data
        i = 0
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                self._fail(f"upgrade refused: {status.decode('latin-1')}")
                return
            self.upgraded, self.t_upgraded, i = True, now, end + 4
            if self.client.ready_on == "101":
                self._set_ready()
        tally = self.client.tally
        tally.rx_ns = now
        marker = tally.marker
        mlen = len(marker)
        n = len(buf)
        while n - i >= 2:
            b1 = buf[i + 1] & 0x7F
            h = 2
            if b1 == 126:
                if n - i < 4:
                    break
                b1, h = int.from_bytes(buf[i + 2 : i + 4], "big"), 4
            elif b1 == 127:
                if n - i < 10:
                    break
                b1, h = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
            end = i + h + b1
            if end > n:
                break
            op = buf[i] & 0x0F
            if op == OP_TEXT or op == 0:
                p = buf.find(marker, i + h, end)
                if p >= 0 and self.listener:
                    tally.listened += 1
                elif p >= 0:
                    tally.delivered += 1
                    tally.last_ns = now
                    if self.observer:
                        lat = now - int(buf[p + mlen : p + mlen + TS_DIGITS])
                        tally.latencies.setdefault(self.group, []).append(lat)
                        tally.recent_ns = lat
                    if self.on_own is not None:
                        self.on_own()
                if not self.ready.done():
                    self._set_ready()
            elif op == OP_PING:
                self.transport.write(client_frame(buf[i + h : end], OP_PONG))
            elif op == OP_CLOSE:
                code = int.from_bytes(buf[i + h : i + h + 2], "big") if b1 >= 2 else 1005
                if self.on_lost is not None and self.ready.done():
                    self._lost(code)
                    return
                self._fail(f"closed by server with code {code}")
                return
            i = end
        self.buf = buf[i:] if i < n else b""

    def _set_ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(time.monotonic_ns())

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        else:
            self.client.errors.append(why)
        self.closed = True
        if self.transport:
            self.transport.abort()

    def _lost(self, code: int | None) -> None:
        """The storm: the server ended a ready socket; tell the client once, as an expected event."""
        callback, self.on_lost = self.on_lost, None
        self.closed = True
        if self.transport:
            self.transport.abort()
        callback(self, code)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_lost is not None and self.ready.done() and not self.closed:
            self._lost(None)
            return
        if not self.closed:
            self.closed = True
            self.client.errors.append(f"connection lost: {exc}")
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost before ready: {exc}"))

    def send(self, payload: bytes) -> None:
        """Write one masked text frame."""
        if not self.closed:
            self.transport.write(client_frame(payload))

    def close(self) -> None:
        """Send a close frame and drop the socket without waiting (the bench is over)."""
        if not self.closed and self.transport:
            self.closed = True
            self.transport.write(client_frame(b"\x03\xe8", OP_CLOSE))
            self.transport.close()


class LoadClient:
    """Runs the phases of one spec and collects their figures."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.targets: list[dict] = spec["targets"]
        self.headers: list[str] = spec.get("headers", [""])
        self.ready_on: str = spec.get("ready_on", "101")
        self.tally = Tally()
        self.conns: list[Conn] = []
        self.errors: list[str] = []
        self.stdin: asyncio.StreamReader | None = None
        self.ssl: dict[int, ssl.SSLContext] = {}

    # -- plumbing ---------------------------------------------------------------

    async def mark(self, name: str) -> None:
        """Tell the parent a phase boundary and wait until it has taken its snapshot."""
        print(json.dumps({"mark": name}), flush=True)
        if self.stdin is not None:
            await self.stdin.readline()

    @staticmethod
    def cpu() -> float:
        """Return this process's CPU seconds (user + system)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def _ssl_for(self, t: int) -> ssl.SSLContext | None:
        cafile = self.targets[t].get("cafile")
        if not cafile:
            return None
        if t not in self.ssl:
            self.ssl[t] = ssl.create_default_context(cafile=cafile)
        return self.ssl[t]

    async def open_one(self, spec: dict, index: int, timeout: float) -> dict:
        """Open one connection and wait for it to be ready; return its handshake timings."""
        target = self.targets[spec.get("target", 0)]
        loop = asyncio.get_running_loop()
        t0 = time.monotonic_ns()
        conn = Conn(self, spec, index)
        context = self._ssl_for(spec.get("target", 0))
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                lambda: conn, target["host"], target["port"], ssl=context,
                server_hostname=target.get("server_hostname") if context else None,
            )
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET {spec['path']} HTTP/1.1\r\nHost: {target.get('host_header', target['host'])}:{target['port']}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{self.headers[spec.get('headers', 0)]}\r\n"
            )
            conn.transport.write(request.encode("latin-1"))
            t_ready = await conn.ready
        self.conns.append(conn)
        return {"upgrade_ms": (conn.t_upgraded - t0) / 1e6, "ready_ms": (t_ready - t0) / 1e6}

    def rooms(self) -> dict[int, list[Conn]]:
        """Group the open connections by room, in the spec's order (not the order they opened in).

        The spec order makes a room's first member, the closed loop's sender, the same one
        every run (it decides which cluster worker stores the room's messages).
        """
        rooms: dict[int, list[Conn]] = {}
        for conn in sorted(self.conns, key=lambda c: c.index):
            if not conn.closed and not conn.listener:
                rooms.setdefault(conn.room, []).append(conn)
        return rooms

    def new_marker(self) -> bytes:
        """Return a fresh phase marker: late frames of an earlier phase never match it."""
        return b"@@" + "".join(random.choices(string.ascii_letters, k=6)).encode() + b"~"

    async def drain(self, expected: int, seconds: float) -> None:
        """Wait until every expected delivery arrived, or nothing arrived for `seconds`."""
        last, idle_since = -1, time.monotonic()
        deadline = idle_since + 5 * seconds
        while self.tally.delivered < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            if self.tally.delivered != last:
                last, idle_since = self.tally.delivered, time.monotonic()
            elif time.monotonic() - idle_since > seconds:
                break

    async def quiesce(self, quiet_s: float = 0.5, cap_s: float = 30.0) -> float:
        """Wait until nothing has arrived for quiet_s (a saturated server works off its backlog)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < cap_s:
            if (time.monotonic_ns() - self.tally.rx_ns) / 1e9 >= quiet_s:
                break
            await asyncio.sleep(0.05)
        return round(time.monotonic() - t0, 2)

    def phase_result(self, *, sent: int, expected: int, t0_ns: int, send_s: float, cpu0: float) -> dict:
        """Summarise the tally of a finished send phase (client CPU share over the busy span)."""
        tally = self.tally
        span = max((tally.last_ns - t0_ns) / 1e9, send_s, 1e-9)
        wall = span
        client_cpu = self.cpu() - cpu0
        result = {
            "sent": sent,
            "expected": expected,
            "delivered": tally.delivered,
            "listened": tally.listened,
            "loss": round(1 - tally.delivered / expected, 5) if expected else None,
            "delivered_per_s": round(tally.delivered / span, 1),
            "send_s": round(send_s, 3),
            "client_cpu_share": round(client_cpu / wall, 3),
            **percentiles([v for vs in tally.latencies.values() for v in vs]),
        }
        if len(tally.latencies) > 1:
            result["groups"] = {g: {"n": len(v), **percentiles(v)} for g, v in sorted(tally.latencies.items())}
        result["client_bound"] = result["client_cpu_share"] > 0.9
        return result

    # -- phases -----------------------------------------------------------------

    async def phase_connect(self, p: dict) -> dict:
        """Open connections with at most `inflight` handshakes at once."""
        specs: list[dict] = p["conns"]
        sem = asyncio.Semaphore(p.get("inflight", 100))
        timings: list[dict] = []
        failures: list[str] = []
        base = len(self.conns)
        cpu0, t0 = self.cpu(), time.monotonic()

        async def one(i: int, spec: dict) -> None:
            async with sem:
                try:
                    timings.append(await self.open_one(spec, base + i, p.get("timeout", 30)))
                except (OSError, ConnectionError, TimeoutError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(one(i, s) for i, s in enumerate(specs)))
        wall = time.monotonic() - t0
        ready = sorted(t["ready_ms"] for t in timings)
        upgrade = sorted(t["upgrade_ms"] for t in timings)
        q = lambda v, f: round(v[min(len(v) - 1, int(f * len(v)))], 2) if v else None  # noqa: E731
        return {
            "attempted": len(specs),
            "opened": len(timings),
            "failed": len(failures),
            "failures": sorted(set(failures))[:5],
            "wall_s": round(wall, 3),
            "handshakes_per_s": round(len(timings) / wall, 1) if wall else None,
            "upgrade_p50_ms": q(upgrade, 0.5),
            "upgrade_p99_ms": q(upgrade, 0.99),
            "ready_p50_ms": q(ready, 0.5),
            "ready_p99_ms": q(ready, 0.99),
            "ready_max_ms": round(ready[-1], 2) if ready else None,
            "client_cpu_share": round((self.cpu() - cpu0) / wall, 3) if wall else None,
            "ready_ms_all": [round(t, 2) for t in ready] if p.get("keep_timings") else None,
        }

    async def open_loop(self, rate: float, seconds: float, drain_s: float, senders: str = "any",
                        abort_ms: float = 1000.0, backlog_s: float = 0.3) -> dict:
        """Send `rate` messages/s over all rooms (round robin) for `seconds`, then drain.

        Sending stops early once an observer sees a latency over abort_ms, or once more than
        backlog_s worth of the offered deliveries are outstanding: the server is saturated, and
        a longer step would only pile up a backlog to wait for.
        """
        rooms = self.rooms()
        order = sorted(rooms)
        if senders == "first":
            pick = {r: [rooms[r][0]] for r in order}
        else:
            pick = rooms
        marker = self.new_marker()
        self.tally.reset(marker)
        cpu0, t0 = self.cpu(), time.monotonic_ns()
        sent = expected = 0
        total = int(rate * seconds)
        k = 0
        abort_ns = abort_ms * 1e6
        aborted = False
        while sent < total:
            backlog = (expected - self.tally.delivered) / (expected / sent * rate) if sent else 0.0
            if self.tally.recent_ns > abort_ns or (backlog > backlog_s and expected - self.tally.delivered > 500):
                aborted = True
                break
            due = min(total, int((time.monotonic_ns() - t0) / 1e9 * rate) + 1)
            while sent < due:
                room = order[k % len(order)]
                k += 1
                members = rooms[room]
                random.choice(pick[room]).send(message_payload(marker, time.monotonic_ns()))
                sent += 1
                expected += len(members)
            next_due = t0 + (sent / rate) * 1e9
            await asyncio.sleep(max(0.0, (next_due - time.monotonic_ns()) / 1e9))
        send_s = (time.monotonic_ns() - t0) / 1e9
        await self.drain(expected, drain_s)
        return {"offered_msgs_per_s": rate, "offered_deliveries_per_s": round(expected / max(send_s, 1e-9), 1),
                "aborted": aborted,
                **self.phase_result(sent=sent, expected=expected, t0_ns=t0, send_s=send_s, cpu0=cpu0)}

    async def closed_loop(self, window: int, seconds: float, drain_s: float) -> dict:
        """Keep `window` messages in flight per room: a sender sends again when its own copy arrives."""
        rooms = self.rooms()
        marker = self.new_marker()
        self.tally.reset(marker)
        counts = {"sent": 0, "expected": 0}
        stop = False
        senders: list[Conn] = []

        def make_sender(conn: Conn, size: int):
            def again() -> None:
                if not stop:
                    conn.send(message_payload(marker, time.monotonic_ns()))
                    counts["sent"] += 1
                    counts["expected"] += size
            return again

        cpu0, t0 = self.cpu(), time.monotonic_ns()
        for members in rooms.values():
            sender = members[0]
            sender.on_own = make_sender(sender, len(members))
            senders.append(sender)
            for _ in range(window):
                sender.on_own()
        await asyncio.sleep(seconds)
        stop = True
        send_s = (time.monotonic_ns() - t0) / 1e9
        await self.drain(counts["expected"], drain_s)
        for sender in senders:
            sender.on_own = None
        return {"window": window, **self.phase_result(sent=counts["sent"], expected=counts["expected"], t0_ns=t0,
                                                      send_s=send_s, cpu0=cpu0)}

    async def phase_steps(self, p: dict) -> list[dict]:
        """Open-loop steps of rising rate; stop after the first saturated one."""
        results = []
        for i, rate in enumerate(p["rates"]):
            name = f"{p['name']}:{i}"
            await self.mark(name + ":start")
            r = await self.open_loop(rate, p["seconds"], p.get("drain", 3.0), p.get("senders", "any"),
                                     p.get("abort_ms", 1000.0))
            await self.mark(name + ":end")
            r["step"] = i
            results.append(r)
            slow = r["delivered_per_s"] < 0.8 * r["offered_deliveries_per_s"]
            r["saturated"] = r["aborted"] or slow or r["loss"] > 0.01 or (r["p99_ms"] or 0) > p.get("max_p99_ms", 500)
            if r["saturated"]:
                r["quiesce_s"] = await self.quiesce(0.3)
                break
            await asyncio.sleep(p.get("pause", 0.3))
        return results

    async def phase_closed(self, p: dict) -> dict:
        """One closed-loop run, bracketed by marks."""
        await self.quiesce(0.3)
        await self.mark(p["name"] + ":start")
        r = await self.closed_loop(p["window"], p["seconds"], p.get("drain", 3.0))
        await self.mark(p["name"] + ":end")
        return r

    async def phase_storm(self, p: dict) -> dict:
        """A reconnect storm: the parent restarts a worker at the `:restart` mark; every socket it ends
        reconnects (after a random wait under `jitter` seconds, as the page does after a 1012) with
        the spec's path plus `resume` (`?after=...`), and the phase lasts until all are back.
        """
        loop = asyncio.get_running_loop()
        lost: list[float] = []
        back: list[float] = []
        failures: list[str] = []
        t_restart = [0.0]

        async def reconnect(conn: Conn) -> None:
            await asyncio.sleep(random.uniform(0, p.get("jitter", 1.0)))
            spec = {**conn.spec, "path": conn.spec["path"].split("?")[0] + p.get("resume", "")}
            for _attempt in range(20):
                try:
                    await self.open_one(spec, conn.index, p.get("timeout", 30))
                    back.append(time.monotonic())
                    new = self.conns[-1]
                    new.on_lost = on_lost
                    break
                except (OSError, ConnectionError, TimeoutError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}"[:120])
                    await asyncio.sleep(0.2)

        def on_lost(conn: Conn, code: int | None) -> None:
            lost.append(time.monotonic())
            if conn in self.conns:
                self.conns.remove(conn)
            loop.create_task(reconnect(conn))

        for conn in self.conns:
            conn.on_lost = on_lost
        await self.mark(p["name"] + ":start")
        t_restart[0] = time.monotonic()
        await self.mark(p["name"] + ":restart")  # the parent stops a worker and starts it again
        deadline = time.monotonic() + p.get("seconds", 60)
        while time.monotonic() < deadline and (not lost or len(back) < len(lost)):
            await asyncio.sleep(0.05)
        await self.mark(p["name"] + ":end")
        for conn in self.conns:
            conn.on_lost = None
        waits = sorted(t - t_restart[0] for t in back)
        pick = (lambda q: round(waits[min(len(waits) - 1, int(q * len(waits)))], 3)) if waits else (lambda q: None)
        return {"lost": len(lost), "back": len(back), "failures": sorted(set(failures))[:5],
                "failed_attempts": len(failures), "all_back_s": round(waits[-1], 3) if waits else None,
                "p50_back_s": pick(0.5), "p99_back_s": pick(0.99)}

    async def phase_idle(self, p: dict) -> dict:
        """Hold the connections open and silent for a while, bracketed by marks."""
        await self.mark(p["name"] + ":start")
        cpu0, t0 = self.cpu(), time.monotonic()
        await asyncio.sleep(p["seconds"])
        await self.mark(p["name"] + ":end")
        open_now = sum(1 for c in self.conns if not c.closed)
        return {"open": open_now, "client_cpu_share": round((self.cpu() - cpu0) / (time.monotonic() - t0), 3)}

    async def phase_close(self, p: dict) -> dict:
        """Close every connection and give the server a moment to notice."""
        for conn in self.conns:
            conn.close()
        count = len(self.conns)
        self.conns = []
        await asyncio.sleep(p.get("settle", 1.0))
        return {"closed": count}

    async def run(self) -> dict:
        """Run every phase of the spec in order."""
        if sys.stdin and not self.spec.get("no_marks"):
            loop = asyncio.get_running_loop()
            self.stdin = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(self.stdin), sys.stdin)
        out: dict[str, Any] = {"phases": {}}
        for p in self.spec["phases"]:
            kind = p["op"]
            if kind == "connect":
                await self.mark(p["name"] + ":start")
                r: Any = await self.phase_connect(p)
                await self.mark(p["name"] + ":end")
            else:
                r = await getattr(self, "phase_" + kind)(p)
            out["phases"][p["name"]] = r
        out["errors"] = sorted(set(self.errors))[:10]
        out["error_count"] = len(self.errors)
        return out


def raise_nofile() -> None:
    """Lift the soft open-files limit to the hard one (thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    """Read the spec from stdin's first line, run it, print the result."""
    raise_nofile()
    spec = json.loads(sys.stdin.readline())
    try:
        import uvloop  # bench/requirements.txt; plain asyncio works too, only slower
    except ImportError:
        uvloop = None
    runner = uvloop.run if uvloop and not spec.get("no_uvloop") else asyncio.run
    result = runner(LoadClient(spec).run())
    result["event_loop"] = "uvloop" if runner is not asyncio.run else "asyncio"
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
