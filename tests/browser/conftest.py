"""Headless Debian Chromium, driven by Playwright, against a live TLS server."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.support.server import live_server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PASSWORD = "browser-pass-phrase-7"


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    # A test module may set SERVER_ENV (a dict) to run its own live server with other settings.
    extra_env = getattr(request.module, "SERVER_ENV", None)
    with live_server(tmp_path_factory.mktemp("browser"), static=True, extra_env=extra_env) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


class Person:
    """One user in their own browser context (own cookies), with page helpers."""

    def __init__(self, browser, server, username: str):
        self.server = server
        self.username = username
        self.context = browser.new_context(ignore_https_errors=True, base_url=server.origin)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.console_errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("response", lambda r: r.status >= 400 and self.console_errors.append(f"{r.status} {r.url}"))

    def login(self, password: str = PASSWORD) -> None:
        self.page.goto("/accounts/login/")
        self.page.fill("input[name=username]", self.username)
        self.page.fill("input[name=password]", password)
        self.page.click("form [type=submit]")
        self.page.wait_for_url(self.server.origin + "/")

    def enter_room(self, slug: str) -> None:
        self.page.goto(f"/rooms/{slug}/")
        self.wait_connected()

    def wait_connected(self) -> None:
        self.page.wait_for_selector("#connection-state[data-state=open]", timeout=15_000)

    def send(self, text: str) -> None:
        box = self.page.locator("#composer-input")
        box.fill(text)
        box.press("Enter")

    def message_bodies(self) -> list[str]:
        return self.page.locator("#messages .message .message-body").all_inner_texts()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def person(browser, server):
    people: list[Person] = []

    def make(username: str, *, create: bool = True) -> Person:
        if create:
            server.create_user(username, PASSWORD)
        p = Person(browser, server, username)
        people.append(p)
        return p

    yield make
    for p in people:
        p.close()
