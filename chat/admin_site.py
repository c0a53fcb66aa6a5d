"""The admin site: Django's, with its login going through the sign-in throttle.

Its own module, not chat/admin.py: Django imports the default site while it autodiscovers
admin modules, and chat/admin.py registers models on that site.
"""

from django.contrib import admin
from django.utils.decorators import method_decorator

from chat.web.signin_throttle import throttle_sign_in


class ChatAdminSite(admin.AdminSite):
    """Django's admin site; a POST to its login takes sign-in tokens first (chat/web/signin_throttle.py)."""

    @method_decorator(throttle_sign_in)
    def login(self, request, extra_context=None):
        return super().login(request, extra_context)
