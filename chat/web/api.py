"""JSON API: tokens, rooms, members and message history (protocol section 1)."""

import json
from collections.abc import Callable
from functools import wraps

import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import authenticate
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from chat.actions import authority
from chat.domain import selectors, services
from chat.presence import get_presence_store
from chat.protocol import inbound
from chat.protocol.errors import ChatError
from chat.web.auth import authenticate_request
from chat.web.signin_throttle import sign_in_refused
from chat.web.views import rooms_with_online

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def error_response(exc: ChatError) -> JsonResponse:
    return JsonResponse({"error": exc.code, "detail": exc.detail}, status=exc.status)


def _csrf_failure(request: HttpRequest) -> bool:
    """Run Django's CSRF check on a session-authenticated unsafe request."""
    return CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {}) is not None


def api_view(*methods: str, auth: bool = True) -> Callable:
    """Make a JSON endpoint: method check, Bearer or session auth, CSRF for sessions, ChatError bodies."""

    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            try:
                if request.method not in methods:
                    response = JsonResponse(
                        {"error": "method_not_allowed", "detail": f"use {', '.join(methods)}"}, status=405
                    )
                    response["Allow"] = ", ".join(methods)
                    return response
                how = authenticate_request(request)
                if how == "session" and request.method not in SAFE_METHODS and _csrf_failure(request):
                    raise ChatError("forbidden", "CSRF check failed: send the X-CSRFToken header")
                if auth and not request.user.is_authenticated:
                    raise ChatError("not_authenticated", "log in or send Authorization: Bearer <token>")
                return view(request, *args, **kwargs)
            except ChatError as exc:
                return error_response(exc)

        return wrapper

    return decorate


def json_body(request: HttpRequest) -> dict:
    """Return the request's JSON object body, or its form fields."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            raise ChatError("bad_json", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ChatError("bad_request", "the body must be a JSON object")
        return data
    return request.POST.dict()


def _room_or_error(*, slug: str, user) -> "selectors.Room":
    room = selectors.room_get(slug=slug)
    if room is None:
        raise ChatError("not_found", "no such room")
    if not selectors.room_user_can_access(room=room, user=user):
        raise ChatError("forbidden", "this room is private")
    return room


def _query_int(request: HttpRequest, name: str, *, low: int, high: int | None = None) -> int | None:
    return inbound.parse_query_int(request.GET.get(name), name, low=low, high=high)


@api_view("POST", auth=False)
def token_issue(request: HttpRequest) -> JsonResponse:
    data = json_body(request)
    if "username" in data or "password" in data:
        refused = sign_in_refused(request, username=data.get("username"))
        if refused is not None:
            raise refused
        user = authenticate(request, username=str(data.get("username", "")), password=str(data.get("password", "")))
        if user is None:
            raise ChatError("not_authenticated", "wrong username or password")
    elif request.user.is_authenticated:
        user = request.user
    else:
        raise ChatError("not_authenticated", "log in or send username and password")
    name = data.get("name") if isinstance(data.get("name"), str) else ""
    _token, raw = services.token_create(user=user, name=name)
    return JsonResponse({"token": raw}, status=201)


@api_view("GET", "POST")
def rooms(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        # Joined rooms carry their state for this user (protocol section 11), the rest `joined: false`.
        states = {state["slug"]: state for state in selectors.room_states(user=request.user)}
        listed = [{**room, **states.get(room["slug"], {"joined": False})} for room in rooms_with_online(user=request.user)]
        return JsonResponse({"rooms": listed})
    data = json_body(request)
    room = services.room_create(
        user=request.user, name=data.get("name"), slug=data.get("slug"), private=data.get("private", False)
    )
    online = async_to_sync(get_presence_store().online_counts)(rooms=[room.slug]).get(room.slug, 0)
    return JsonResponse({"slug": room.slug, "name": room.name, "private": room.private, "online": online}, status=201)


@api_view("GET", "POST")
def room_members(request: HttpRequest, slug: str) -> JsonResponse:
    room = _room_or_error(slug=slug, user=request.user)
    if request.method == "GET":
        return JsonResponse({"room": room.slug, "members": selectors.room_members(room=room)})
    membership, created = services.membership_add(room=room, actor=request.user, username=json_body(request).get("username"))
    member = {"id": membership.user_id, "username": membership.user.get_username()}
    return JsonResponse({"room": room.slug, "user": member, "created": created}, status=201 if created else 200)


@api_view("DELETE")
def room_member(request: HttpRequest, slug: str, username: str) -> JsonResponse:
    room = selectors.room_get(slug=slug)
    if room is None:
        raise ChatError("not_found", "no such room")
    authority.membership_remove(room=room, actor=request.user, username=username)
    return JsonResponse({"room": room.slug, "removed": username})


@api_view("GET")
def room_messages(request: HttpRequest, slug: str) -> JsonResponse:
    room = _room_or_error(slug=slug, user=request.user)
    before = _query_int(request, "before", low=0)
    after = _query_int(request, "after", low=0)
    since = _query_int(request, "since", low=0)
    if since is not None and after is None:
        raise ChatError("bad_request", "`since` needs `after`")
    limit = _query_int(request, "limit", low=1, high=settings.CHAT_HISTORY_MAX) or settings.CHAT_HISTORY_DEFAULT
    if after is not None:
        messages, has_more = selectors.message_list_after(room=room, after=after, before=before, since=since,
                                                          limit=limit)
    elif before is not None:
        messages, has_more = selectors.message_list_before(room=room, before=before, limit=limit)
    else:
        messages, has_more = selectors.message_list_latest(room=room, limit=limit)
    return JsonResponse({"messages": messages, "has_more": has_more})


async def _channel_layer_ok() -> bool:
    import asyncio

    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.check"})
    message = await asyncio.wait_for(layer.receive(channel), timeout=2)
    return message.get("type") == "health.check"


def healthz(request: HttpRequest) -> JsonResponse:
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        checks["channel_layer"] = "ok" if async_to_sync(_channel_layer_ok)() else "error"
    except Exception as exc:  # noqa: BLE001
        checks["channel_layer"] = f"error: {type(exc).__name__}"
    if settings.REDIS_URL:
        # Presence and rate limits live in Redis too, not only the channel layer.
        try:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
            checks["redis"] = "ok" if client.ping() else "error"
            client.close()
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", **checks}, status=200 if healthy else 503)
