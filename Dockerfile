# The web image: Daphne started the one way every deployment starts it (chatproject/server.py).
# Used by docker-compose.yml for the web replicas and the one-shot migrate and cert jobs.
# PYTHON_IMAGE: the base image (a local stand-in where no registry is reachable, see
# deploy/standin_images.py). EXTRA_CA_CERTS: PEM text of CA certificates that pip must trust
# while it downloads, for networks behind a TLS-intercepting proxy; used by that one step
# and not left in the image's trust store (a build argument stays visible in
# `docker history`: pass only public certificates).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}
ARG EXTRA_CA_CERTS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# openssl: the cert job runs deploy/make-cert.sh with this image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin chat

WORKDIR /app
COPY requirements.txt .
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
        cat /etc/ssl/certs/ca-certificates.crt > /tmp/build-ca.pem \
        && printf '%s\n' "$EXTRA_CA_CERTS" >> /tmp/build-ca.pem \
        && export PIP_CERT=/tmp/build-ca.pem; \
    fi \
    && pip install -r requirements.txt \
    && rm -f /tmp/build-ca.pem
COPY . .

ENV DJANGO_SETTINGS_MODULE=chatproject.settings \
    CHAT_VAR_DIR=/srv/var \
    STATIC_ROOT=/srv/static \
    MEDIA_ROOT=/srv/media \
    CHAT_BIND=0.0.0.0 \
    CHAT_PORT=8000

# Collected at build so the image runs on its own; compose's migrate job collects again
# into the shared static volume, so nginx always serves this image's files. The key is a
# throwaway: without one, settings would write a random key into the image.
# The /srv folders are made here, owned by the app user, so fresh named volumes mounted
# on them start with that ownership.
RUN mkdir -p /srv/var /srv/static /srv/media /srv/tls /srv/secrets /srv/metrics \
    && DJANGO_SECRET_KEY=collectstatic-at-build-only python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R chat:chat /srv

USER chat
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["python", "-m", "chatproject.server"]
