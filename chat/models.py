"""Data shape of the chat: rooms, memberships, messages, attachments and API tokens."""

from django.conf import settings
from django.db import models


class Room(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    private = models.BooleanField(default=False, help_text="Only members may read or post.")
    # A direct-message room: private, exactly two members, who never change.
    dm = models.BooleanField(default=False, db_default=False, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    # The seq of the newest message; bumped under a row lock when a message is stored.
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)
    # The version of the newest change to the room's messages (a new message, an edit, a
    # deletion); bumped under the same row lock, so versions are gapless in commit order too.
    last_version = models.PositiveBigIntegerField(default=0, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="chat_rooms", blank=True
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships")
    created = models.DateTimeField(auto_now_add=True)
    # The user's read cursor: the seq they have read up to; it never moves back.
    last_read = models.PositiveBigIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="chat_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.room}"


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveBigIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_messages")
    body = models.TextField(blank=True)
    client_id = models.CharField(max_length=64, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # The room's version of this message's latest change (its creation, edit or deletion).
    version = models.PositiveBigIntegerField(default=0)
    edited = models.DateTimeField(null=True, blank=True)
    deleted = models.BooleanField(default=False, db_default=False)  # the hot INSERTs leave it to the database

    class Meta:
        ordering = ["room", "seq"]
        indexes = [models.Index(fields=["room", "version"], name="chat_message_room_version")]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="chat_message_room_seq_unique"),
            models.UniqueConstraint(
                fields=["room", "user", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="chat_message_client_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.room}#{self.seq}"


class Attachment(models.Model):
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="attachment")
    file = models.FileField(upload_to="attachments/%Y/%m/")
    # What clients are shown and downloads are named: the sanitised base name, never a path.
    name = models.CharField(max_length=255)
    original_name = models.CharField(max_length=255, blank=True, help_text="As the uploader sent it; shown only here.")
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """A revocable bearer token; only its SHA-256 digest is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=8, editable=False, help_text="First characters, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
