"""Token buckets in a swappable store: messages per user per room, and sign-in attempts."""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from chat.ratelimit.base import RateLimiter

# What each kind of limit counts, and the settings that size its buckets.
KINDS = {
    "messages": ("CHAT_RATE_BURST", "CHAT_RATE_PER_SECOND"),
    "login": ("CHAT_LOGIN_BURST", "CHAT_LOGIN_PER_SECOND"),
}


@cache
def _limiter(path: str, kind: str) -> RateLimiter:
    limiter = import_string(path)()
    limiter.burst_setting, limiter.rate_setting = KINDS[kind]
    return limiter


def get_rate_limiter(kind: str = "messages") -> RateLimiter:
    """Return the process-wide rate limiter of this kind, in the store named by settings."""
    return _limiter(settings.CHAT_RATE_LIMIT_BACKEND, kind)


__all__ = ["RateLimiter", "get_rate_limiter"]
