"""HTTP response headers every page gets: the Content-Security-Policy."""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    """Send a CSP that forbids inline script everywhere (the admin may keep inline styles)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            admin = request.path.startswith("/admin/")
            response["Content-Security-Policy"] = settings.CHAT_CSP_ADMIN if admin else settings.CHAT_CSP
        return response
