"""Run a shared presence store's heartbeat in each worker and announce what it sweeps."""

import asyncio
import logging

from django.conf import settings

from chat import metrics
from chat.actions.presence import presence_announce
from chat.presence import get_presence_store

log = logging.getLogger(__name__)
_tasks: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def ensure_heartbeat() -> None:
    """Start this event loop's heartbeat task once, if the presence backend needs one."""
    store = get_presence_store()
    if not store.needs_heartbeat:
        return
    loop = asyncio.get_running_loop()
    task = _tasks.get(loop)
    if task is None or task.done():
        _tasks[loop] = loop.create_task(_heartbeat_forever(store), name="chat-presence-heartbeat")


async def heartbeat_once(store) -> int:
    """Beat once; broadcast a presence frame for every room a dead worker left. Return how many."""
    changes = await store.heartbeat()
    if changes:
        metrics.PRESENCE_SWEPT.inc(len(changes))
    for room, change in changes:
        await presence_announce(room=room, change=change)
    return len(changes)


async def _heartbeat_forever(store) -> None:
    while True:
        try:
            await heartbeat_once(store)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("presence heartbeat failed; retrying")
        await asyncio.sleep(settings.CHAT_PRESENCE_HEARTBEAT)
