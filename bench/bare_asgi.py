"""The floor: a raw ASGI broadcast app on stock Daphne, with no Django, Channels or auth.

    .venv/bin/python -m daphne -b 127.0.0.1 -p 8000 bench.bare_asgi:application

Every text frame is relayed to every socket on the same path, like bench/peers/ws_server.js.
Whatever this costs per handshake, per idle connection or per delivery, Daphne (Twisted and
autobahn) costs before any of our code runs: the benchmark reports it as that floor.
"""

rooms: dict[str, dict] = {}


async def application(scope, receive, send):
    """Accept a socket, add it to its path's room, relay each text frame to the room."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        return await send({"type": "lifespan.shutdown.complete"})
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        return await send({"type": "http.response.body", "body": b""})
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    room = rooms.setdefault(scope["path"], {})
    room[send] = None
    try:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text")
            if text is not None:
                out = {"type": "websocket.send", "text": text}
                for peer in list(room):
                    await peer(out)
    finally:
        room.pop(send, None)
