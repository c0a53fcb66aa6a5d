"""Sign-in and sign-up attempts, throttled per client address and per username tried.

Each POST to the login page, the admin's login page, sign-up or the token API with a
password (POST /api/tokens/) takes a token from the
client address's bucket and, when a username is given, from that username's bucket
(CHAT_LOGIN_BURST tokens, refilled at CHAT_LOGIN_PER_SECOND; the store is the message
rate limiter's, so Redis in a cluster). The address bucket slows one machine trying many
names; the username bucket slows many machines trying one name, at the price that they
can keep that name's owner waiting too (a minute per bucket's worth of tries).
Behind nginx the address is the X-Forwarded-For one (DJANGO_BEHIND_PROXY).
"""

import asyncio
import functools
import logging

from asgiref.sync import async_to_sync
from django.shortcuts import render

from chat.protocol.errors import ChatError
from chat.ratelimit import get_rate_limiter

log = logging.getLogger(__name__)

USERNAME_KEY_CHARS = 150  # Django's username length: longer tries share one key


async def _allowed(keys: list[str]) -> bool:
    limiter = get_rate_limiter("login")
    # Each bucket pays for the try; taken together, they are one Redis call.
    return all(await asyncio.gather(*(limiter.take(key) for key in keys)))


def sign_in_refused(request, *, username: object) -> ChatError | None:
    """Take this try's tokens; return the refusal (rate_limited or unavailable), else None."""
    # "/" cannot occur in a room slug, so these keys never meet the message buckets'.
    keys = [f"login/addr/{request.META.get('REMOTE_ADDR', '')}"]
    if isinstance(username, str) and username:
        keys.append(f"login/user/{username[:USERNAME_KEY_CHARS]}")
    try:
        allowed = async_to_sync(_allowed)(keys)
    except Exception:
        log.exception("sign-in throttle unavailable")
        return ChatError("unavailable", "Signing in is unavailable for a moment. Try again shortly.")
    if not allowed:
        log.warning("sign-in throttled addr=%s", request.META.get("REMOTE_ADDR"))
        return ChatError("rate_limited", "Too many sign-in attempts. Wait a minute, then try again.")
    return None


def throttle_sign_in(view):
    """Wrap a login or sign-up view: its POSTs go through the buckets first."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method == "POST":
            refused = sign_in_refused(request, username=request.POST.get("username"))
            if refused is not None:
                response = render(request, "registration/throttled.html", {"detail": refused.detail},
                                  status=refused.status)
                if refused.code == "rate_limited":
                    response["Retry-After"] = "60"
                return response
        return view(request, *args, **kwargs)

    return wrapped
