"""Announce that an authority ended (protocol section 8): a session, tokens, a user, or who may enter a room.

Each announcement goes once to every worker, after the change commits; the workers close
their own sockets (chat/realtime/authority.py). Django's auth and admin make some of these
changes themselves (logout, a user deactivated or deleted in the admin, a membership or a
room deleted there), so receivers of their model signals announce those; the project's own
services announce theirs explicitly.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model, user_logged_out
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

from chat.domain import services
from chat.domain.auth import session_digest
from chat.models import ApiToken, Membership, Room
from chat.realtime.authority import AUTHORITY_GROUP, EVENT_TYPE

log = logging.getLogger(__name__)


def _announce(event: dict) -> None:
    """Send an ending to every worker once the current transaction commits (at once outside one)."""

    def send():
        try:
            async_to_sync(get_channel_layer().group_send)(AUTHORITY_GROUP, {"type": EVENT_TYPE, **event})
        except Exception:  # noqa: BLE001 - the change stands; the session timer and reconnects still apply
            log.exception("announcing %s failed", event)

    transaction.on_commit(send)


def session_ended(*, session_key: str) -> None:
    """Close every socket opened with this session (4401)."""
    _announce({"kind": "session", "session": session_digest(session_key)})


def tokens_revoked(*, token_ids: list[int]) -> None:
    """Close every socket opened with these tokens (4401)."""
    if token_ids:
        _announce({"kind": "token", "tokens": list(token_ids)})


def user_ended(*, user_id: int) -> None:
    """Close every socket of this user (4401): deactivated or deleted."""
    _announce({"kind": "user", "user": user_id})


def room_access_changed(*, room: str) -> None:
    """Re-check who may be in this room: members removed or the room made private (4403), or deleted (4404)."""
    _announce({"kind": "room", "room": room})


def tokens_revoke(*, token_ids: list[int]) -> int:
    """Revoke tokens and close the sockets opened with them; return how many were selected."""
    count = services.tokens_revoke(token_ids=token_ids)
    tokens_revoked(token_ids=token_ids)
    return count


def membership_remove(*, room: Room, actor, username: object) -> None:
    """Remove a member (the creator or staff, or the member themselves); their sockets to a private room close."""
    services.membership_remove(room=room, actor=actor, username=username)
    room_access_changed(room=room.slug)


# -- changes Django's auth and admin make themselves ------------------------------------


def _on_logout(sender, request, user, **kwargs):
    if request is not None and getattr(request, "session", None) is not None and request.session.session_key:
        session_ended(session_key=request.session.session_key)


def _on_session_deleted(sender, instance, **kwargs):
    session_ended(session_key=instance.session_key)


def _remember_user_state(sender, instance, update_fields=None, **kwargs):
    # Only a save that may change is_active is looked at (not, say, last_login at each sign-in).
    if instance.pk and (update_fields is None or "is_active" in update_fields):
        instance._chat_was_active = (
            sender.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first())


def _on_user_saved(sender, instance, created, **kwargs):
    if not created and not instance.is_active and getattr(instance, "_chat_was_active", False):
        user_ended(user_id=instance.pk)


def _on_user_deleted(sender, instance, **kwargs):
    user_ended(user_id=instance.pk)


def _remember_room_state(sender, instance, update_fields=None, **kwargs):
    if instance.pk and (update_fields is None or "private" in update_fields):
        instance._chat_was_private = sender.objects.filter(pk=instance.pk).values_list("private", flat=True).first()


def _on_room_saved(sender, instance, created, **kwargs):
    if not created and instance.private and getattr(instance, "_chat_was_private", None) is False:
        room_access_changed(room=instance.slug)


def _on_room_deleted(sender, instance, **kwargs):
    room_access_changed(room=instance.slug)


def _on_membership_deleted(sender, instance, **kwargs):
    room = Room.objects.filter(pk=instance.room_id).values_list("slug", flat=True).first()
    if room is not None:
        room_access_changed(room=room)


def _on_token_saved(sender, instance, created, **kwargs):
    if instance.revoked:
        tokens_revoked(token_ids=[instance.pk])


def _on_token_deleted(sender, instance, **kwargs):
    tokens_revoked(token_ids=[instance.pk])


def connect_signals() -> None:
    """Hook the receivers above up (ChatConfig.ready)."""
    user_model = get_user_model()
    user_logged_out.connect(_on_logout, dispatch_uid="chat.authority.logout")
    post_delete.connect(_on_session_deleted, sender=Session, dispatch_uid="chat.authority.session")
    pre_save.connect(_remember_user_state, sender=user_model, dispatch_uid="chat.authority.user_pre")
    post_save.connect(_on_user_saved, sender=user_model, dispatch_uid="chat.authority.user_saved")
    post_delete.connect(_on_user_deleted, sender=user_model, dispatch_uid="chat.authority.user_deleted")
    pre_save.connect(_remember_room_state, sender=Room, dispatch_uid="chat.authority.room_pre")
    post_save.connect(_on_room_saved, sender=Room, dispatch_uid="chat.authority.room_saved")
    post_delete.connect(_on_room_deleted, sender=Room, dispatch_uid="chat.authority.room_deleted")
    post_delete.connect(_on_membership_deleted, sender=Membership, dispatch_uid="chat.authority.membership")
    post_save.connect(_on_token_saved, sender=ApiToken, dispatch_uid="chat.authority.token_saved")
    post_delete.connect(_on_token_deleted, sender=ApiToken, dispatch_uid="chat.authority.token_deleted")
