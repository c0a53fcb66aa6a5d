"""The channel layer for one process with no Redis: Channels' in-memory layer, made cheap to sweep.

InMemoryChannelLayer sweeps every channel and every group membership on each send,
group_send and receive. With one hub channel per process and one group per room
(chat/fanout.py), that is O(rooms) per message: ~10% of the server's CPU at 100 rooms
(py-spy, bench 100x10). It also ends a group membership after `group_expiry` (a day),
which exists for consumers that die without leaving; the hub leaves its groups
explicitly and never dies alone, so a room open for a day would silently stop hearing
its own broadcasts.
"""

import time

from channels.layers import InMemoryChannelLayer


class LocalChannelLayer(InMemoryChannelLayer):
    """In-memory layer: expired messages swept at most once a second, group memberships kept."""

    sweep_interval = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._swept_at = float("-inf")

    def _clean_expired(self):
        now = time.monotonic()
        if now - self._swept_at < self.sweep_interval:
            return
        self._swept_at = now
        # The parent's channel sweep, without its group expiry.
        for channel, queue in list(self.channels.items()):
            while not queue.empty() and queue._queue[0][0] < time.time():
                queue.get_nowait()
                self._remove_from_groups(channel)
                if queue.empty():
                    self.channels.pop(channel, None)
