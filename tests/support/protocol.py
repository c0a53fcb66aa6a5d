"""Check that a frame from the server is a well-formed protocol frame (PROTOCOL.md section 4)."""

from datetime import datetime

ERROR_CODES = {"bad_json", "bad_request", "too_long", "too_large", "unsupported_type", "rate_limited", "unavailable",
               "forbidden", "not_found", "too_late"}


def _user(value) -> None:
    assert isinstance(value, dict) and set(value) == {"id", "username"}, value
    assert isinstance(value["id"], int) and isinstance(value["username"], str)


def _time(value) -> None:
    assert isinstance(value, str) and (value.endswith("Z") or value.endswith("+00:00")), value
    datetime.fromisoformat(value.replace("Z", "+00:00"))


def _message(value) -> None:
    assert {"id", "seq", "room", "user", "body", "created", "client_id", "attachment", "edited", "deleted",
            "version"} <= set(value), value
    assert isinstance(value["version"], int) and value["version"] >= 1 and isinstance(value["deleted"], bool)
    assert value["edited"] is None or isinstance(value["edited"], str)
    if value["deleted"]:
        assert value["body"] == "" and value["attachment"] is None, value
    assert isinstance(value["id"], int) and isinstance(value["seq"], int) and value["seq"] >= 1
    assert isinstance(value["room"], str) and isinstance(value["body"], str)
    _user(value["user"])
    _time(value["created"])
    assert value["client_id"] is None or isinstance(value["client_id"], str)
    attachment = value["attachment"]
    if attachment is not None:
        assert set(attachment) == {"url", "name", "content_type", "size"}, attachment


def _ordered(messages) -> None:
    assert isinstance(messages, list)
    for m in messages:
        _message(m)
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs


ROOM_STATE_FIELDS = {"type", "slug", "name", "private", "dm", "joined", "last_seq", "last_version", "last_read",
                     "unread", "mentions", "last_activity", "last_message"}


def _room_state(frame) -> None:
    if frame.get("joined") is False:
        assert set(frame) == {"type", "slug", "joined"}, frame
        return
    assert set(frame) == ROOM_STATE_FIELDS, frame
    for key in ("last_seq", "last_version", "last_read", "unread", "mentions"):
        assert isinstance(frame[key], int) and frame[key] >= 0, frame
    assert frame["last_read"] <= frame["last_seq"] <= frame["last_version"], frame
    assert frame["mentions"] <= frame["unread"] <= frame["last_seq"] - frame["last_read"], frame
    _time(frame["last_activity"])
    if frame["last_message"] is not None:
        _message(frame["last_message"])
        assert frame["last_message"]["seq"] == frame["last_seq"], frame


def assert_valid_frame(frame: dict) -> None:
    """Fail unless frame has a known type and exactly the fields the protocol gives it."""
    assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
    kind = frame["type"]
    if kind == "hello":
        assert {"user", "room", "online", "messages", "last_seq", "last_version", "last_read", "truncated"} <= set(frame)
        assert isinstance(frame["last_version"], int) and frame["last_version"] >= frame["last_seq"]
        assert isinstance(frame["last_read"], int) and 0 <= frame["last_read"] <= frame["last_seq"]
        _user(frame["user"])
        assert set(frame["room"]) == {"slug", "name", "private"}
        for u in frame["online"]:
            _user(u)
        _ordered(frame["messages"])
        assert isinstance(frame["last_seq"], int) and isinstance(frame["truncated"], bool)
    elif kind == "message":
        _message(frame)
    elif kind == "ack":
        assert set(frame) == {"type", "client_id", "id", "seq"}, frame
        assert isinstance(frame["id"], int) and isinstance(frame["seq"], int)
    elif kind == "presence":
        assert set(frame) == {"type", "online", "joined", "left"}, frame
        for key in ("online", "joined", "left"):
            for u in frame[key]:
                _user(u)
    elif kind == "typing":
        assert set(frame) == {"type", "user", "active"} and isinstance(frame["active"], bool), frame
        _user(frame["user"])
    elif kind == "history":
        assert set(frame) == {"type", "messages", "has_more"} and isinstance(frame["has_more"], bool), frame
        _ordered(frame["messages"])
    elif kind == "room_state":
        _room_state(frame)
    elif kind == "user_hello":
        assert set(frame) == {"type", "user", "rooms"}, frame
        _user(frame["user"])
        for state in frame["rooms"]:
            _room_state({"type": "room_state", **state})
        activity = [state["last_activity"] for state in frame["rooms"]]
        assert activity == sorted(activity, reverse=True), activity
    elif kind == "pong":
        assert set(frame) == {"type", "ts"}, frame
    elif kind == "error":
        assert {"type", "code", "detail"} <= set(frame) <= {"type", "code", "detail", "client_id"}, frame
        assert frame["code"] in ERROR_CODES and isinstance(frame["detail"], str) and frame["detail"]
    else:
        raise AssertionError(f"unknown frame type {kind!r}")
