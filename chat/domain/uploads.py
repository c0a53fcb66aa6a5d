"""Attachments: check an upload's bytes, sanitise its name, store it through Django storage."""

import os
import uuid
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.text import get_valid_filename

from chat.models import Attachment, Message
from chat.protocol.errors import ChatError
from chat.protocol.inbound import UploadHeader

# Magic numbers of the image types we show inline: a file that claims to be an image must be one.
IMAGE_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


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
        message=message, file=saved, name=safe_filename(header.name), original_name=header.name[:255],
        content_type=header.content_type, size=header.size,
    )
