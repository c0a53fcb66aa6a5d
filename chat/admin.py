"""Admin for rooms (with memberships), messages (moderation) and API tokens."""

from django.contrib import admin, messages

from chat.actions import authority
from chat.actions.messages import messages_moderate_delete
from chat.domain import services
from chat.models import ApiToken, Attachment, Membership, Message, Room


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "private", "last_seq", "created_by", "created"]
    list_filter = ["private"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["last_seq", "created"]
    inlines = [MembershipInline]


class AttachmentInline(admin.StackedInline):
    model = Attachment
    extra = 0
    readonly_fields = ["name", "original_name", "content_type", "size", "file"]
    can_delete = False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["room", "seq", "user", "short_body", "created"]
    list_filter = ["room"]
    search_fields = ["body", "user__username"]
    list_select_related = ["room", "user"]
    readonly_fields = ["room", "seq", "user", "body", "client_id", "created", "version", "edited", "deleted"]
    inlines = [AttachmentInline]
    date_hierarchy = "created"

    def has_add_permission(self, request):
        # Messages enter through the socket only, which assigns their seq.
        return False

    def delete_model(self, request, obj):
        # A moderator's delete is the socket's: the body emptied, the file removed, the seq kept, every page told.
        messages_moderate_delete(message_ids=[obj.pk], actor=request.user)

    def delete_queryset(self, request, queryset):
        messages_moderate_delete(message_ids=list(queryset.values_list("pk", flat=True)), actor=request.user)

    @admin.display(description="body")
    def short_body(self, obj):
        return obj.body if len(obj.body) <= 80 else obj.body[:79] + "…"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created", "last_used", "revoked"]
    list_filter = ["revoked"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["prefix", "created", "last_used"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["user", "name"] if obj is None else ["user", "name", "prefix", "created", "last_used", "revoked"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, raw = services.token_create(user=obj.user, name=obj.name)
        obj.pk = token.pk
        obj.prefix, obj.digest, obj.created = token.prefix, token.digest, token.created
        messages.warning(request, f"New token for {obj.user}: {raw} (shown once; copy it now).")

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        count = authority.tokens_revoke(token_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Revoked {count} token(s).")
