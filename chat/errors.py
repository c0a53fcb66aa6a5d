"""The one exception type services raise; its code is a protocol error code."""


class ChatError(Exception):
    """A refusal that clients see as an error frame or an HTTP error body."""

    http_status = {
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
    }

    def __init__(self, code: str, detail: str, *, client_id: str | None = None):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.client_id = client_id

    @property
    def status(self) -> int:
        return self.http_status.get(self.code, 400)
