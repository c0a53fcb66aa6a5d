"""Files over binary frames: header then bytes, limits, bad sequences, and who may download."""

import pytest
from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.test import Client, override_settings

from chat.models import Attachment, Message
from chat.protocol import inbound
from tests.factories import make_room, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)
ROOM = "/ws/rooms/general/"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 56


@pytest.fixture(autouse=True)
def _own_media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


@pytest.fixture
def people(db):
    make_room("general")
    return {name: make_token(make_user(name)) for name in ("alice", "bob")}


def _stored():
    return Message.objects.count(), Attachment.objects.count()


def _files():
    found = []

    def walk(path):
        dirs, files = default_storage.listdir(path)
        found.extend(f"{path}/{f}" for f in files)
        for d in dirs:
            walk(f"{path}/{d}")

    if default_storage.exists("attachments"):
        walk("attachments")
    return found


def header(**fields):
    return {"type": "upload", "name": "pic.png", "content_type": "image/png", "size": len(PNG), **fields}


async def test_upload_is_stored_and_broadcast_as_a_message_with_attachment(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    await alice.send(header(client_id="u1", body="look"))
    await alice.send_bytes(PNG)
    got = await alice.collect("message", "ack")
    message = await bob.recv_type("message")
    assert message == got["message"]
    assert message["body"] == "look" and message["seq"] == 1 and message["client_id"] == "u1"
    attachment = message["attachment"]
    assert attachment["name"] == "pic.png" and attachment["content_type"] == "image/png"
    assert attachment["size"] == len(PNG) and attachment["url"].startswith("/rooms/general/files/")
    assert got["ack"]["seq"] == 1
    await bob.send({"type": "history", "before": 2})
    assert (await bob.recv_type("history"))["messages"][0]["attachment"] == attachment


@pytest.mark.parametrize(
    ("fields", "data", "code"),
    [
        ({}, PNG + b"extra", "bad_request"),  # wrong size
        ({"size": 3}, b"abc", "unsupported_type"),  # claims PNG, is not
        ({"name": "notes.txt", "content_type": "text/plain", "size": 10}, b"short", "bad_request"),
        ({"body": "cap\x00tion"}, PNG, "bad_request"),  # refused header: its bytes are dropped quietly
    ],
)
async def test_bad_upload_bytes_store_nothing_and_the_socket_carries_on(people, open_socket, fields, data, code):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    await alice.send(header(client_id="bad", **fields))
    await alice.send_bytes(data)
    error = await alice.recv()
    assert error["type"] == "error" and error["code"] == code and error["client_id"] == "bad"
    await alice.send({"type": "ping", "ts": 1})
    assert await alice.recv() == {"type": "pong", "ts": 1}
    assert await sync_to_async(_stored)() == (0, 0)
    assert await sync_to_async(_files)() == []


async def test_refused_header_drops_its_bytes_quietly(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    with override_settings(CHAT_MAX_ATTACHMENT_BYTES=10):
        await alice.send(header(client_id="big"))
        await alice.send_bytes(PNG)
        await alice.send({"type": "ping", "ts": 2})
        error = await alice.recv()
    assert error["code"] == "too_large" and error["client_id"] == "big"
    assert await alice.recv() == {"type": "pong", "ts": 2}  # no second error for the bytes
    assert await sync_to_async(_stored)() == (0, 0)


async def test_header_followed_by_text_is_abandoned(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    await alice.send(header(client_id="lost"))
    await alice.send({"type": "ping", "ts": 3})
    error = await alice.recv()
    assert error["code"] == "bad_request" and error["client_id"] == "lost"
    assert await alice.recv() == {"type": "pong", "ts": 3}
    await alice.send_bytes(PNG)  # too late: nothing pending now
    assert (await alice.recv())["code"] == "bad_request"
    assert await sync_to_async(_stored)() == (0, 0)


async def test_header_without_bytes_expires(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    with override_settings(CHAT_UPLOAD_TIMEOUT=0.2):
        await alice.send(header(client_id="slow"))
        error = await alice.recv()
    assert error["code"] == "bad_request" and error["client_id"] == "slow" and "never came" in error["detail"]
    assert await sync_to_async(_stored)() == (0, 0)


async def test_repeated_upload_client_id_stores_one_file(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    for _ in range(2):
        await alice.send(header(client_id="same"))
        await alice.send_bytes(PNG)
        await alice.recv_type("ack")
    assert await sync_to_async(_stored)() == (1, 1)
    assert len(await sync_to_async(_files)()) == 1


async def test_path_traversal_name_is_sanitised_where_stored_shown_and_served(people, open_socket):
    alice, _ = await open_socket(ROOM, bearer=people["alice"])
    bob, _ = await open_socket(ROOM, bearer=people["bob"])
    await alice.send(header(name="../../etc/passwd", content_type="text/plain", size=5))
    await alice.send_bytes(b"hello")
    await alice.recv_type("ack")
    files = await sync_to_async(_files)()
    assert len(files) == 1 and files[0].startswith("attachments/") and files[0].endswith("/passwd")
    assert ".." not in files[0]
    # Every client is shown the base name, never the path the uploader sent.
    attachment = (await bob.recv_type("message"))["attachment"]
    assert attachment["name"] == "passwd"
    stored = await sync_to_async(Attachment.objects.get)()
    assert (stored.name, stored.original_name) == ("passwd", "../../etc/passwd")  # the original is for the admin
    # The download is named the same way.
    token = people["bob"]

    def download():
        return Client().get(attachment["url"], HTTP_AUTHORIZATION=f"Bearer {token}")

    response = await sync_to_async(download)()
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'inline; filename="passwd"'
    history = await sync_to_async(lambda: Client().get(
        "/api/rooms/general/messages/", HTTP_AUTHORIZATION=f"Bearer {token}").json())()
    assert history["messages"][-1]["attachment"]["name"] == "passwd"


def _download_setup():
    owner, outsider = make_user("owner"), make_user("outsider")
    room = make_room("vault", private=True, members=[owner])
    from chat.domain import services, uploads

    def upload(name, content_type, data):
        head = inbound.check_upload({"name": name, "content_type": content_type, "size": len(data)})
        frame, _ = services.message_create(
            room=room, user=owner, body="", client_id=None, attachment=uploads.upload_complete(head, data)
        )
        return frame["attachment"]["url"]

    return owner, outsider, upload


def test_download_is_for_room_members_with_safe_headers(transactional_db):
    owner, outsider, upload = _download_setup()
    image_url = upload("pic.png", "image/png", PNG)
    other_url = upload("data.bin", "application/octet-stream", b"\x00\x01")
    member = Client()
    member.force_login(owner)
    response = member.get(image_url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "image/png" and response["Content-Disposition"].startswith("inline")
    response = member.get(other_url)
    assert response["Content-Disposition"].startswith("attachment")
    stranger = Client()
    stranger.force_login(outsider)
    assert stranger.get(image_url).status_code == 403
    assert Client().get(image_url).status_code == 302  # to the login page


def test_download_takes_a_bearer_token_for_scripts(transactional_db):
    owner, outsider, upload = _download_setup()
    url = upload("pic.png", "image/png", PNG)
    response = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}")
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    assert Client().get(url, HTTP_AUTHORIZATION=f"Bearer {make_token(outsider)}").status_code == 403
    refused = Client().get(url, HTTP_AUTHORIZATION="Bearer not-a-token")
    assert refused.status_code == 401 and refused["WWW-Authenticate"] == "Bearer"
