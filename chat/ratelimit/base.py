"""The rate limiter interface: a token bucket per key."""

from django.conf import settings


class RateLimiter:
    """Allow `burst` events at once, refilled at `rate` per second, per key.

    Methods that child classes must implement: take.
    """

    @property
    def burst(self) -> float:
        return settings.CHAT_RATE_BURST

    @property
    def rate(self) -> float:
        return settings.CHAT_RATE_PER_SECOND

    async def take(self, key: str) -> bool:
        """Take one token for key; return False when the bucket is empty (the event is refused)."""
        raise NotImplementedError
