from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from chat.actions import authority, read_state

        authority.connect_signals()
        read_state.connect_signals()


class ChatAdminConfig(admin_apps.AdminConfig):
    """The Django admin, on a site whose login is throttled like every other sign-in."""

    default = False  # named in INSTALLED_APPS; ChatConfig stays this module's default
    default_site = "chat.admin_site.ChatAdminSite"
