"""Decode and check client frames (protocol section 3); every refusal is a ChatError."""

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings

from chat.protocol.errors import ChatError

CLIENT_TYPES = frozenset({"message", "typing", "history", "upload", "ping", "edit", "delete", "read"})
# What a user socket (/ws/user/) takes: it only listens, and answers pings.
USER_SOCKET_TYPES = frozenset({"ping"})


def decode(text: str, types: frozenset[str] = CLIENT_TYPES) -> dict[str, Any]:
    """Parse a text frame into a frame dict with a known string `type`."""
    limit = settings.CHAT_MAX_TEXT_FRAME_BYTES
    # Four bytes per character at most: only encode when the frame might be too large.
    if len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit:
        raise ChatError("too_large", f"text frames are limited to {limit} bytes")
    try:
        frame = json.loads(text)
    except ValueError:
        raise ChatError("bad_json", "the frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise ChatError("bad_request", "a frame must be a JSON object")
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise ChatError("bad_request", "a frame needs a string `type`")
    if kind not in types:
        raise ChatError("bad_request", f"unknown frame type {kind[:40]!r}")
    return frame


def check_int(frame: dict, name: str, *, low: int, high: int | None = None, default: int | None = None) -> int:
    """Return an integer field within [low, high], or its default when absent."""
    value = frame.get(name)
    if value is None and default is not None and name not in frame:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ChatError("bad_request", f"`{name}` must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ChatError("bad_request", f"`{name}` must be {bound}")
    return value


def check_bool(frame: dict, name: str) -> bool:
    """Return a required boolean field."""
    value = frame.get(name)
    if not isinstance(value, bool):
        raise ChatError("bad_request", f"`{name}` must be a boolean")
    return value


def check_client_id(value: object) -> str | None:
    """Return an optional client_id: absent, or a string of 1 to 64 characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ChatError("bad_request", "client_id must be a string")
    if not 1 <= len(value) <= 64:
        raise ChatError("bad_request", "client_id must be 1 to 64 characters", client_id=value[:64] or None)
    if "\x00" in value:
        raise ChatError("bad_request", "client_id must not contain NUL characters")
    return value


def check_history(frame: dict) -> tuple[int, int]:
    """Return (before, limit) of a history frame."""
    before = check_int(frame, "before", low=0)
    limit = check_int(frame, "limit", low=1, high=settings.CHAT_HISTORY_MAX, default=settings.CHAT_HISTORY_DEFAULT)
    return before, limit


def check_ping(frame: dict) -> Any:
    """Return the `ts` of a ping, which may be any JSON value."""
    if "ts" not in frame:
        raise ChatError("bad_request", "ping needs a `ts`")
    return frame["ts"]


def parse_query_int(raw: str | None, name: str, *, low: int = 0, high: int | None = None) -> int | None:
    """Return a query parameter as an integer within [low, high], None when absent or empty; raise when malformed."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ChatError("bad_request", f"`{name}` must be a non-negative integer")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ChatError("bad_request", f"`{name}` must be {bound}")
    return value


def parse_after(query_string: bytes) -> int | None:
    """Return the `after` of a socket URL's query, None when absent; raise when malformed."""
    return parse_recovery(query_string)[0]


def parse_recovery(query_string: bytes) -> tuple[int | None, int | None]:
    """Return (after, since) of a socket URL's query, None where absent; raise when malformed.

    since without after means after the newest seq the client has: it needs after.
    """
    query = parse_qs(query_string.decode("latin-1"))
    after = parse_query_int(query["after"][0], "after") if query.get("after") else None
    since = parse_query_int(query["since"][0], "since") if query.get("since") else None
    if since is not None and after is None:
        raise ChatError("bad_request", "`since` needs `after`")
    return after, since


def check_message(frame: dict) -> tuple[str, str | None]:
    """Check a message frame's fields; return the trimmed body and the client_id."""
    body = frame.get("body")
    client_id = check_client_id(frame.get("client_id"))
    if not isinstance(body, str):
        raise ChatError("bad_request", "body must be a string", client_id=client_id)
    body = body.strip()
    if not body:
        raise ChatError("bad_request", "body is empty", client_id=client_id)
    limit = settings.CHAT_MAX_BODY_CHARS
    if len(body) > limit:
        raise ChatError("too_long", f"body is longer than {limit} characters", client_id=client_id)
    if "\x00" in body:  # PostgreSQL text cannot hold it; refused on SQLite too, for one behaviour
        raise ChatError("bad_request", "body must not contain NUL characters", client_id=client_id)
    return body, client_id


@dataclass(frozen=True)
class UploadHeader:
    """A checked `upload` frame, waiting for its binary frame."""

    name: str
    content_type: str
    size: int
    client_id: str | None
    body: str


def check_upload(frame: dict) -> UploadHeader:
    """Check an `upload` header frame against the limits and the allowed types."""
    client_id = check_client_id(frame.get("client_id"))
    name, content_type, size = frame.get("name"), frame.get("content_type"), frame.get("size")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise ChatError("bad_request", "name must be a string of 1 to 255 characters", client_id=client_id)
    if not isinstance(content_type, str) or not content_type or len(content_type) > 100:
        raise ChatError("bad_request", "content_type must be a non-empty string", client_id=client_id)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ChatError("bad_request", "size must be a positive integer", client_id=client_id)
    body = frame.get("body", "")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise ChatError("bad_request", "body must be a string", client_id=client_id)
    body = body.strip()
    if len(body) > settings.CHAT_MAX_BODY_CHARS:
        raise ChatError("too_long", f"caption is longer than {settings.CHAT_MAX_BODY_CHARS} characters", client_id=client_id)
    if "\x00" in body or "\x00" in name:
        raise ChatError("bad_request", "name and caption must not contain NUL characters", client_id=client_id)
    limit = settings.CHAT_MAX_ATTACHMENT_BYTES
    if size > limit:
        raise ChatError("too_large", f"attachments are limited to {limit} bytes", client_id=client_id)
    content_type = content_type.strip().lower()
    if content_type not in settings.CHAT_ALLOWED_CONTENT_TYPES:
        raise ChatError("unsupported_type", f"{content_type[:100]} files are not accepted here", client_id=client_id)
    return UploadHeader(name=name, content_type=content_type, size=size, client_id=client_id, body=body)


def check_edit(frame: dict) -> tuple[object, str, str | None]:
    """Return (id, trimmed body, client_id) of an edit frame; the body is checked as a message's."""
    body, client_id = check_message(frame)
    return frame.get("id"), body, client_id


def check_delete(frame: dict) -> tuple[object, str | None]:
    """Return (id, client_id) of a delete frame."""
    return frame.get("id"), check_client_id(frame.get("client_id"))


def check_read(frame: dict) -> int:
    """Return the seq of a read frame."""
    return check_int(frame, "seq", low=0)
