"""GET /metrics: the Prometheus text format, for allowed addresses or a Bearer token only."""

import hmac
import ipaddress
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from chat.domain.auth import bearer_token


def _allowed(request: HttpRequest) -> bool:
    token = settings.CHAT_METRICS_TOKEN
    offered = bearer_token(request.headers.get("Authorization", ""))
    if token and offered is not None:
        return hmac.compare_digest(offered.encode(), token.encode())
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.CHAT_METRICS_ALLOW)


def metrics(request: HttpRequest) -> HttpResponse:
    """Every chat metric, of this worker or (multi-process mode) of every worker sharing CHAT_METRICS_DIR."""
    if not _allowed(request):
        return HttpResponse("metrics are for allowed addresses or a Bearer token (CHAT_METRICS_ALLOW, "
                            "CHAT_METRICS_TOKEN)", status=403, content_type="text/plain")
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    import chat.metrics  # noqa: F401 - registers the chat's metrics in this process

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
