"""The admin: rooms with memberships inline, message moderation, API tokens."""

import pytest
from django.test import Client

from chat.domain import services
from chat.models import ApiToken, Message
from chat.protocol import inbound
from tests.factories import make_room, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    client = Client()
    client.force_login(make_user("admin", is_staff=True, is_superuser=True))
    return client


def test_admin_lists_every_model(admin_client):
    for url in ("/admin/chat/room/", "/admin/chat/message/", "/admin/chat/apitoken/", "/admin/auth/user/",
                "/admin/chat/room/add/", "/admin/chat/apitoken/add/"):
        assert admin_client.get(url).status_code == 200, url


def test_room_change_page_has_memberships_inline(admin_client):
    room = make_room("crew", members=[make_user("pat")])
    page = admin_client.get(f"/admin/chat/room/{room.pk}/change/")
    assert page.status_code == 200 and b"memberships-TOTAL_FORMS" in page.content


def test_messages_can_be_searched_filtered_and_deleted(admin_client):
    room, other = make_room("crew"), make_room("other")
    user = make_user()
    frame, _ = services.message_create(room=room, user=user, body="needle in a haystack", client_id=None)
    services.message_create(room=other, user=user, body="unrelated", client_id=None)
    found = admin_client.get("/admin/chat/message/", {"q": "needle"})
    assert b"needle in a haystack" in found.content and b"unrelated" not in found.content
    filtered = admin_client.get("/admin/chat/message/", {"room__id__exact": other.pk})
    assert b"unrelated" in filtered.content and b"needle" not in filtered.content
    response = admin_client.post(f"/admin/chat/message/{frame['id']}/delete/", {"post": "yes"})
    assert response.status_code == 302
    # A moderator's delete is the protocol's: the body goes, the seq stays (gapless), the version moves on.
    deleted = Message.objects.get(pk=frame["id"])
    assert (deleted.deleted, deleted.body, deleted.seq) == (True, "", frame["seq"])
    assert deleted.version == frame["version"] + 1


def test_token_added_in_admin_is_shown_once_and_works(admin_client):
    owner = make_user("bot-owner")
    response = admin_client.post("/admin/chat/apitoken/add/", {"user": owner.pk, "name": "bot"}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    raw = shown[0].split(": ", 1)[1].split(" ", 1)[0]
    assert services.token_authenticate(raw=raw) == owner
    token = ApiToken.objects.get(user=owner)
    admin_client.post("/admin/chat/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert services.token_authenticate(raw=raw) is None


def test_deleting_a_message_in_the_admin_removes_its_file(
    admin_client, settings, tmp_path, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    from chat.domain import uploads

    settings.MEDIA_ROOT = str(tmp_path)
    room, user = make_room("files"), make_user()
    header = inbound.check_upload({"name": "a.txt", "content_type": "text/plain", "size": 3})
    frame, _ = services.message_create(
        room=room, user=user, body="", client_id=None, attachment=uploads.upload_complete(header, b"abc")
    )
    stored = Message.objects.get(pk=frame["id"]).attachment.file.name
    assert default_storage.exists(stored)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/chat/message/", {"action": "delete_selected", "_selected_action": [frame["id"]], "post": "yes"}
        )
    assert Message.objects.get(pk=frame["id"]).deleted
    assert not hasattr(Message.objects.get(pk=frame["id"]), "attachment") or not default_storage.exists(stored)
    assert not default_storage.exists(stored)


def test_migration_keeps_old_attachment_names_for_the_admin_and_shows_their_base_name(db):
    import importlib

    from django.apps import apps

    from chat.models import Attachment

    migration = importlib.import_module("chat.migrations.0003_attachment_original_name")
    room, user = make_room("old-files"), make_user()
    message = Message.objects.create(room=room, seq=1, user=user, body="")
    # As rows stored before the migration look: the name as the client sent it.
    old = Attachment.objects.create(message=message, file="attachments/x/passwd", name="../../etc/passwd",
                                    content_type="text/plain", size=5)
    migration.sanitise_names(apps, None)
    old.refresh_from_db()
    assert (old.name, old.original_name) == ("passwd", "../../etc/passwd")


def test_admin_revokes_tokens_through_the_service(admin_client):
    user = make_user("bot-owner")
    token, _raw = services.token_create(user=user, name="bot")
    response = admin_client.post("/admin/chat/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked
