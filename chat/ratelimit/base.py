"""The rate limiter interface: a token bucket per key."""

from django.conf import settings


class RateLimiter:
    """Allow `burst` events at once, refilled at `rate` per second, per key.

    The two numbers are read from the settings named by burst_setting and rate_setting
    (messages by default; chat.ratelimit.get_rate_limiter("login") names the login ones).

    Methods that child classes must implement: take.
    """

    burst_setting = "CHAT_RATE_BURST"
    rate_setting = "CHAT_RATE_PER_SECOND"

    @property
    def burst(self) -> float:
        return getattr(settings, self.burst_setting)

    @property
    def rate(self) -> float:
        return getattr(settings, self.rate_setting)

    async def take(self, key: str) -> bool:
        """Take one token for key; return False when the bucket is empty (the event is refused)."""
        raise NotImplementedError
