# Two commands for a fresh machine: `make run` and `make test`. See README.md.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
VAR := var
TLS := $(VAR)/tls
PORT ?= 8443
HTTP_PORT ?= 8080
WORKERS ?= 2
CLUSTER_SERVICES := redis-server postgresql nginx openssl
# The compose tier: Debian's Docker engine, Compose 1.29, and mmdebstrap for local base images.
COMPOSE_TOOLS := docker.io docker-compose mmdebstrap

.PHONY: run cluster cluster-stop cluster-manage lint test test-conformance conformance test-unit test-consumers test-live test-browser test-cluster test-compose deps test-deps cert clean help

help:
	@echo "make run   - serve the chat at https://localhost:8443 (SQLite, in-memory layer, one Daphne)"
	@echo "make cluster [WORKERS=N] - the multi-worker way: N Daphne workers behind nginx on Redis and"
	@echo "             PostgreSQL, at https://localhost:8443 (state in var/cluster); make cluster-stop"
	@echo "make cluster-manage ARGS=createsuperuser - manage.py against the running cluster"
	@echo "make test  - install what the suite needs and run every test tier"

$(VENV)/.deps: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.test-deps: requirements-dev.txt $(VENV)/.deps
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

deps: $(VENV)/.deps
test-deps: $(VENV)/.test-deps

$(TLS)/cert.pem:
	@sh deploy/install-system-deps.sh openssl
	sh deploy/make-cert.sh $(TLS)

cert: $(TLS)/cert.pem

run: $(VENV)/.deps $(TLS)/cert.pem
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo
	@echo "  Chat is starting at https://localhost:$(PORT)  (self-signed certificate: accept it once)"
	@echo "  http://localhost:$(HTTP_PORT) redirects there."
	@echo "  Make an admin user:  $(PY) manage.py createsuperuser"
	@echo "  Stop with Ctrl-C."
	@echo
	CHAT_TLS_CERT=$(TLS)/cert.pem CHAT_TLS_KEY=$(TLS)/key.pem CHAT_PORT=$(PORT) CHAT_HTTP_PORT=$(HTTP_PORT) \
	  DJANGO_SSL_REDIRECT=1 DJANGO_SSL_HOST=localhost:$(PORT) \
	  CHAT_BIND=$${CHAT_BIND:-127.0.0.1,::1} $(PY) -m chatproject.server

# The multi-worker way to run it, as in production: see deploy/cluster.py and docker-compose.yml.
cluster: $(VENV)/.deps
	sh deploy/install-system-deps.sh $(CLUSTER_SERVICES)
	$(PY) deploy/cluster.py start --workers $(WORKERS) --dir $(VAR)/cluster --https-port 8443 --http-port 8080

cluster-stop:
	$(PY) deploy/cluster.py stop --dir $(VAR)/cluster

# manage.py against the running cluster's database, e.g. `make cluster-manage ARGS=createsuperuser`.
cluster-manage: $(VENV)/.deps
	$(PY) deploy/cluster.py manage --dir $(VAR)/cluster $(ARGS)

test: $(VENV)/.test-deps bench/peers/node_modules/.package-lock.json
	sh deploy/install-system-deps.sh openssl chromium $(CLUSTER_SERVICES) $(COMPOSE_TOOLS)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check .

test-unit: $(VENV)/.test-deps
	$(PY) -m pytest tests/unit
test-consumers: $(VENV)/.test-deps
	$(PY) -m pytest tests/consumers
test-live: $(VENV)/.test-deps
	$(PY) -m pytest tests/live
test-browser: $(VENV)/.test-deps
	sh deploy/install-system-deps.sh chromium
	$(PY) -m pytest tests/browser
test-cluster: $(VENV)/.test-deps
	sh deploy/install-system-deps.sh $(CLUSTER_SERVICES) docker-compose
	$(PY) -m pytest tests/cluster
# docker-compose.yml on a real Docker engine (started here if none runs; needs root).
test-compose: $(VENV)/.test-deps
	sh deploy/install-system-deps.sh $(COMPOSE_TOOLS)
	$(PY) -m pytest tests/compose

test-conformance: $(VENV)/.test-deps
	sh deploy/install-system-deps.sh nginx
	$(PY) -m pytest tests/conformance

# Every Autobahn case, 12-13 in full and the 16 MiB cases with a raised cap (slow: ~15 min).
conformance: $(VENV)/.test-deps
	sh deploy/install-system-deps.sh nginx
	CHAT_CONFORMANCE_FULL=1 $(PY) -m pytest tests/conformance

clean:
	rm -rf $(VENV) .pytest_cache

# Benchmarks (bench/run.py, results in bench/results, docs/benchmarks.md): ours against the Node
# `ws` broadcast server and the Channels tutorial consumer. Needs node and npm on PATH.
.PHONY: bench bench-quick bench-search
$(VENV)/.bench-deps: bench/requirements.txt $(VENV)/.deps
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

bench/peers/node_modules/.package-lock.json: bench/peers/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "bench needs node and npm on PATH" >&2; exit 1; }
	cd bench/peers && npm ci --no-audit --no-fund

bench: $(VENV)/.bench-deps bench/peers/node_modules/.package-lock.json
	sh deploy/install-system-deps.sh $(CLUSTER_SERVICES)
	$(PY) -m bench.run

bench-quick: $(VENV)/.bench-deps bench/peers/node_modules/.package-lock.json
	$(PY) -m bench.run --quick

# Search latency on PostgreSQL over 100,000 stored messages (bench/search_latency.py).
bench-search: $(VENV)/.bench-deps
	sh deploy/install-system-deps.sh $(CLUSTER_SERVICES)
	$(PY) -m bench.search_latency
