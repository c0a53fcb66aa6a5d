"""Per-user, per-room message rate limits: a token bucket in a swappable store."""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from chat.ratelimit.base import RateLimiter


@cache
def _limiter(path: str) -> RateLimiter:
    return import_string(path)()


def get_rate_limiter() -> RateLimiter:
    """Return the process-wide rate limiter named by settings."""
    return _limiter(settings.CHAT_RATE_LIMIT_BACKEND)


__all__ = ["RateLimiter", "get_rate_limiter"]
