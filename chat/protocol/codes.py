"""Close codes, error codes and the limits clients must know: one home, read by the server, the page and the CLI.

No Django import at module level: the command-line client imports the close codes.
"""

CLOSE_NORMAL = 1000
CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
# Added by this project (protocol section 7 has no code for it): the per-user socket cap.
CLOSE_TOO_MANY_CONNECTIONS = 4429
# RFC 6455's "Service Restart": a draining worker (protocol section 9); clients reconnect at once.
CLOSE_SERVICE_RESTART = 1012
RESTART_JITTER_SECONDS = 1.0

# Codes after which a client does not reconnect, with what it tells the user.
FINAL_CLOSE_CODES = {
    CLOSE_NORMAL: "closed",
    CLOSE_NOT_AUTHENTICATED: "not authenticated",
    CLOSE_FORBIDDEN: "not allowed in this room",
    CLOSE_NOT_FOUND: "no such room",
    CLOSE_TOO_MANY_CONNECTIONS: "too many connections",
}

# Error codes (protocol section 4) and the HTTP status each maps to in the JSON API.
ERROR_STATUS = {
    "bad_json": 400,
    "bad_request": 400,
    "too_long": 400,
    "too_large": 413,
    "unsupported_type": 415,
    "rate_limited": 429,
    "unavailable": 503,
    "forbidden": 403,
    "not_found": 404,
    "not_authenticated": 401,
    "too_late": 409,
}


# The socket endpoints (protocol section 1); chat/realtime/routing.py routes these, the pages link them.
ROOM_SOCKET_PATH = "/ws/rooms/{slug}/"
USER_SOCKET_PATH = "/ws/user/"


def client_config() -> dict:
    """Return what the browser page needs to know of the protocol: limits from settings, and the codes."""
    from django.conf import settings

    return {
        "max_body_chars": settings.CHAT_MAX_BODY_CHARS,
        "max_attachment_bytes": settings.CHAT_MAX_ATTACHMENT_BYTES,
        "allowed_content_types": list(settings.CHAT_ALLOWED_CONTENT_TYPES),
        "edit_window_s": settings.CHAT_EDIT_WINDOW,
        "close": {
            "not_authenticated": CLOSE_NOT_AUTHENTICATED,
            "forbidden": CLOSE_FORBIDDEN,
            "not_found": CLOSE_NOT_FOUND,
            "too_many_connections": CLOSE_TOO_MANY_CONNECTIONS,
            "service_restart": CLOSE_SERVICE_RESTART,
        },
        "restart_jitter_ms": int(RESTART_JITTER_SECONDS * 1000),
    }
