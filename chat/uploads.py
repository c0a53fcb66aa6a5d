"""Attachments: check an upload header, sanitise its name, store its bytes through Django storage."""

import os
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.text import get_valid_filename

from chat import frames
from chat.errors import ChatError
from chat.models import Attachment, Message

# Magic numbers of the image types we show inline: a file that claims to be an image must be one.
IMAGE_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


@dataclass(frozen=True)
class UploadHeader:
    name: str
    content_type: str
    size: int
    client_id: str | None
    body: str


@dataclass(frozen=True)
class UploadedFile:
    header: UploadHeader
    data: bytes


def safe_filename(name: str) -> str:
    """Reduce a client-supplied file name to a safe base name (no directories, no odd characters)."""
    base = os.path.basename(name.replace("\\", "/")).strip()
    try:
        cleaned = get_valid_filename(base)
    except Exception:  # noqa: BLE001 - Django raises SuspiciousFileOperation for names like ".."
        cleaned = ""
    cleaned = cleaned.lstrip(".")[:120]
    return cleaned or "file"


def upload_check(frame: dict) -> UploadHeader:
    """Check an `upload` header frame against the limits and the allowed types."""
    client_id = frames.check_client_id(frame.get("client_id"))
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


def upload_complete(header: UploadHeader, data: bytes) -> UploadedFile:
    """Pair a header with its bytes; refuse a size mismatch or an image that is not one."""
    if len(data) != header.size:
        raise ChatError(
            "bad_request", f"expected {header.size} bytes, got {len(data)}; nothing stored", client_id=header.client_id
        )
    magic = IMAGE_MAGIC.get(header.content_type)
    if magic and not data.startswith(magic):
        raise ChatError("unsupported_type", f"the bytes are not a {header.content_type} image", client_id=header.client_id)
    return UploadedFile(header=header, data=data)


def attachment_save(upload: UploadedFile, *, when) -> str:
    """Write the bytes to storage under a unique folder; return the stored name."""
    path = f"attachments/{when:%Y/%m}/{uuid.uuid4().hex}/{safe_filename(upload.header.name)}"
    return default_storage.save(path, ContentFile(upload.data))


def attachment_discard(saved: str | None) -> None:
    """Delete stored bytes that no committed message refers to."""
    if saved:
        default_storage.delete(saved)


def attachment_create(*, message: Message, upload: UploadedFile, saved: str) -> Attachment:
    header = upload.header
    return Attachment.objects.create(
        message=message, file=saved, name=header.name[:255], content_type=header.content_type, size=header.size
    )
