"""The one exception type services raise; its code is a protocol error code (chat/protocol/codes.py)."""

from chat.protocol.codes import ERROR_STATUS


class ChatError(Exception):
    """A refusal that clients see as an error frame or an HTTP error body."""

    def __init__(self, code: str, detail: str, *, client_id: str | None = None):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.client_id = client_id

    @property
    def status(self) -> int:
        return ERROR_STATUS.get(self.code, 400)
