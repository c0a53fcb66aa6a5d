"""Settings: run with no environment at all (SQLite, in-memory layer, memory presence).

Production parts switch on by environment variables; see README.md "Settings".
With DJANGO_ENV=production a missing secret fails at start-up.
"""

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from chatproject.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CHAT_VAR_DIR", BASE_DIR / "var"))


PRODUCTION = env_str("DJANGO_ENV", "development") == "production"
DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    # A file holding the key (Docker's *_FILE convention): compose's `secret` job writes one.
    key_file = env_str("DJANGO_SECRET_KEY_FILE")
    if key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"DJANGO_SECRET_KEY_FILE={key_file} cannot be read: {exc}") from exc
        if not key:
            raise ImproperlyConfigured(f"DJANGO_SECRET_KEY_FILE={key_file} is empty")
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE must be set when DJANGO_ENV=production")
    # Development: one random key per checkout, kept so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        path.chmod(0o600)
        return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "chat.apps.ChatAdminConfig",  # django.contrib.admin with a throttled login
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chat.web.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "chatproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str) -> dict:
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "db.sqlite3")),
            # IMMEDIATE takes the write lock at BEGIN, so two writers queue on the
            # busy timeout instead of failing a lock upgrade mid-transaction.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not shared-cache memory: the concurrency tests write from threads. One
            # per test process, so two test runs on one checkout do not share it.
            "TEST": {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")},
            # Keep the connection: Channels checks it around every database call, and
            # reopening SQLite per message cost ~10% of the message path.
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 600),
        }
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": unquote(parts.hostname or ""),
        "PORT": parts.port or "",
        "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
        # Off by default: Channels closes old connections around every database call, so a
        # health check is a `SELECT 1` round trip per message and per handshake. Without
        # it, the first statement on a connection PostgreSQL dropped fails (the client gets
        # `unavailable`, nothing stored) and the connection is replaced for the next one.
        "CONN_HEALTH_CHECKS": env_bool("DATABASE_HEALTH_CHECKS", False),
    }


DATABASES = {"default": _database(env_str("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    # Pub/sub: one PUBLISH per broadcast reaches each worker once (the core layer's
    # per-channel queues cost far more per delivery: docs/scaling.md, bench/layer_fanout.py).
    # It drops events while Redis is unreachable; clients recover them by seq.
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's pub/sub layer, plus one pipelined PUBLISH per committed batch.
            "BACKEND": "chat.realtime.layers.RedisPubSubLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    # One hub channel per process carries every room's events (chat/fanout.py): give it room.
    # Channels' in-memory layer, minus its O(rooms) sweep per message and group expiry.
    CHANNEL_LAYERS = {"default": {"BACKEND": "chat.realtime.layers.LocalChannelLayer", "CONFIG": {"capacity": 10000}}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:room_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

# Every browser-facing deployment of this project is HTTPS (make run serves TLS).
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Plain-HTTP page requests are redirected to HTTPS (on by default in production; make run
# turns it on for its HTTP port). Health checks stay reachable over plain HTTP.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", PRODUCTION)
SECURE_SSL_HOST = env_str("DJANGO_SSL_HOST") or None
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
if env_bool("DJANGO_BEHIND_PROXY", False):
    # nginx overwrites X-Forwarded-Proto, so clients cannot forge it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS only where the certificate is real: production. A self-signed localhost gets none.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Preloading is a promise to browsers vendors an operator makes deliberately, not a default.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

CHAT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The admin's templates carry a few inline style attributes; scripts stay 'self' only.
CHAT_CSP_ADMIN = CHAT_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

# Chat limits (protocol section 7); all overridable by environment.
CHAT_MAX_BODY_CHARS = env_int("CHAT_MAX_BODY_CHARS", 4000)
CHAT_MAX_TEXT_FRAME_BYTES = env_int("CHAT_MAX_TEXT_FRAME_BYTES", 64 * 1024)
CHAT_MAX_ATTACHMENT_BYTES = env_int("CHAT_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)
CHAT_ALLOWED_CONTENT_TYPES = env_list(
    "CHAT_ALLOWED_CONTENT_TYPES",
    ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain",
     "application/zip", "application/octet-stream"],
)
# Seconds an upload header waits for its binary frame before it is dropped.
CHAT_UPLOAD_TIMEOUT = env_float("CHAT_UPLOAD_TIMEOUT", 30)
CHAT_HELLO_LATEST = env_int("CHAT_HELLO_LATEST", 50)
CHAT_RECOVERY_MAX = env_int("CHAT_RECOVERY_MAX", 1000)
# On SQLite, handshake reads run on the event loop's own read-only connection (chat/store/loop_reads.py).
CHAT_LOOP_READS = env_bool("CHAT_LOOP_READS", True)
# The `history` frame and GET .../messages/: `limit` at most 100, 50 when absent (protocol sections 1, 3).
CHAT_HISTORY_MAX = 100
CHAT_HISTORY_DEFAULT = 50
# Seconds after posting in which the author may edit a message (protocol section 10); 0: no edits.
CHAT_EDIT_WINDOW = env_int("CHAT_EDIT_WINDOW", 3600)
# A user socket writes a room's state at most once per this many seconds (the latest state,
# on the trailing edge): a busy room costs each sidebar a few frames a second, not one per message.
CHAT_ROOM_STATE_INTERVAL = env_float("CHAT_ROOM_STATE_INTERVAL", 0.25)
# GET /api/users/?q= (the DM picker's type-ahead) answers at most this many users.
CHAT_USER_SEARCH_MAX = 20
CHAT_TYPING_MIN_INTERVAL = env_float("CHAT_TYPING_MIN_INTERVAL", 1.0)
# A worker that stops heartbeating for CHAT_PRESENCE_TTL seconds is presumed dead; the
# survivors sweep its connections on their next heartbeat (every CHAT_PRESENCE_HEARTBEAT).
CHAT_PRESENCE_TTL = env_float("CHAT_PRESENCE_TTL", 8)
CHAT_PRESENCE_HEARTBEAT = env_float("CHAT_PRESENCE_HEARTBEAT", 2)
CHAT_PRESENCE_BACKEND = env_str(
    "CHAT_PRESENCE_BACKEND",
    "chat.presence.redis.RedisPresenceStore" if REDIS_URL else "chat.presence.memory.MemoryPresenceStore",
)

CHAT_RATE_BURST = env_float("CHAT_RATE_BURST", 10)
CHAT_RATE_PER_SECOND = env_float("CHAT_RATE_PER_SECOND", 5)
# Sign-in and sign-up attempts: a bucket per client address, and one per username tried.
CHAT_LOGIN_BURST = env_float("CHAT_LOGIN_BURST", 10)
CHAT_LOGIN_PER_SECOND = env_float("CHAT_LOGIN_PER_SECOND", 10 / 60)
CHAT_RATE_LIMIT_BACKEND = env_str(
    "CHAT_RATE_LIMIT_BACKEND",
    "chat.ratelimit.redis.RedisRateLimiter" if REDIS_URL else "chat.ratelimit.memory.MemoryRateLimiter",
)
# /metrics: open to these networks (the scraper on the same host) or to a Bearer token.
CHAT_METRICS_ALLOW = env_list("CHAT_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"])
CHAT_METRICS_TOKEN = env_str("CHAT_METRICS_TOKEN")
# Open sockets one user may hold across all workers; more are closed with 4429.
CHAT_MAX_CONNECTIONS_PER_USER = env_int("CHAT_MAX_CONNECTIONS_PER_USER", 20)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "chat": {"handlers": ["console"], "level": env_str("CHAT_LOG_LEVEL", "INFO"), "propagate": False},
        # Daphne's "Listening on ..." lines tell operators (and the live tests) it is up.
        "daphne.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
