"""Two people chatting in two browser contexts, over wss://, through the real page."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
XSS = "<img src=x onerror=alert(1)>"
# Limits below the defaults (4000 characters, 10 MiB): a page with its own copy of them would show it.
MAX_BODY_CHARS = 280
MAX_ATTACHMENT_BYTES = 3 * 1024 * 1024
SERVER_ENV = {"CHAT_MAX_BODY_CHARS": str(MAX_BODY_CHARS), "CHAT_MAX_ATTACHMENT_BYTES": str(MAX_ATTACHMENT_BYTES)}


def test_two_users_see_each_others_messages(person):
    alice, bob = person("alice"), person("bob")
    for p in (alice, bob):
        p.login()
        p.enter_room("lobby")
    expect(alice.page.locator("#online li[data-user-id]")).to_have_count(2)
    alice.send("hello from alice")
    expect(bob.page.locator("#messages .message-body", has_text="hello from alice")).to_be_visible()
    bob.send("hi alice, bob here")
    expect(alice.page.locator("#messages .message-body", has_text="hi alice, bob here")).to_be_visible()
    # The sender's own copy is confirmed by its ack: it carries a seq and is no longer pending.
    own = alice.page.locator("#messages .message", has_text="hello from alice")
    expect(own).not_to_have_class("pending")
    expect(own).to_have_attribute("data-seq", "1")
    assert alice.console_errors == [] and bob.console_errors == []


def test_html_in_a_message_shows_as_text_and_runs_nothing(person):
    alice, bob = person("mallory"), person("victim")
    for p in (alice, bob):
        p.login()
        p.enter_room("lobby")
    alice.send(XSS)
    body = bob.page.locator("#messages .message-body", has_text="onerror")
    expect(body).to_have_text(XSS)
    assert bob.page.locator("#messages img[src=x]").count() == 0
    assert bob.page.evaluate("document.querySelectorAll('#messages img').length") == 0
    assert bob.dialogs == [] and alice.dialogs == []


def test_the_page_takes_its_limits_from_the_server(person, server):
    expected = server.run_python(
        "import json; from chat.protocol import codes; print(json.dumps(codes.client_config()))"
    )
    assert expected["max_body_chars"] == MAX_BODY_CHARS
    assert expected["max_attachment_bytes"] == MAX_ATTACHMENT_BYTES
    alice, bob = person("limit-alice"), person("limit-bob")
    for p in (alice, bob):
        p.login()
        p.enter_room("lobby")
    expect(alice.page.locator("#online li[data-user-id]")).to_have_count(2)
    rendered = alice.page.evaluate("JSON.parse(document.getElementById('chat-config').textContent)")
    assert rendered == expected
    expect(alice.page.locator(".attach-button")).to_have_attribute("title", re.compile(r"\(up to 3\.0 MB;"))

    alice_before = alice.page.locator("#messages .message").count()
    bob_before = bob.page.locator("#messages .message").count()
    too_long = "x" * (MAX_BODY_CHARS + 1)
    alice.send(too_long)
    expect(alice.page.locator("#notice")).to_have_text(
        f"Message too long: {MAX_BODY_CHARS + 1} characters, the limit is {MAX_BODY_CHARS}."
    )
    # Refused by the page itself: nothing shown, pending or sent, and the text is kept for editing.
    expect(alice.page.locator("#messages .message")).to_have_count(alice_before)
    expect(alice.page.locator("#composer-input")).to_have_value(too_long)

    # Exactly at the limit, counted in code points as the server counts (560 UTF-16 units).
    at_limit = "\U0001f600" * MAX_BODY_CHARS
    alice.send(at_limit)
    expect(bob.page.locator("#messages .message")).to_have_count(bob_before + 1)
    assert bob.message_bodies()[-1] == at_limit
    expect(alice.page.locator("#messages .message.pending")).to_have_count(0)
    expect(alice.page.locator("#notice")).to_be_hidden()
    assert alice.console_errors == [] and bob.console_errors == []


def test_typing_indicator_shows_the_other_user(person):
    alice, bob = person("typer"), person("watcher")
    for p in (alice, bob):
        p.login()
        p.enter_room("lobby")
    alice.page.locator("#composer-input").press_sequentially("abc")
    expect(bob.page.locator("#typing")).to_have_text("typer is typing…")
    alice.page.locator("#composer-input").press("Enter")
    expect(bob.page.locator("#typing")).to_be_hidden()


def test_newcomer_signs_up_creates_a_room_and_history_survives_a_restart(person, server):
    carol = person("carol", create=False)
    page = carol.page
    page.goto("/accounts/signup/")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password1]", "a-long-pass-phrase-9")
    page.fill("input[name=password2]", "a-long-pass-phrase-9")
    page.click("form [type=submit]")
    page.wait_for_url(server.origin + "/")
    page.fill("input[name=name]", "Carol's corner")
    page.fill("input[name=slug]", "carols")
    page.click("form.room-create [type=submit], form[method=post]:has(input[name=name]) [type=submit]")
    page.wait_for_url(server.origin + "/rooms/carols/")
    carol.wait_connected()
    carol.send("before the restart")
    expect(page.locator("#messages .message[data-seq='1']")).to_be_visible()
    server.stop()
    expect(page.locator("#connection-state")).not_to_have_attribute("data-state", "open")
    carol.send("written while offline")
    expect(page.locator("#messages .message.pending")).to_have_count(1)
    server.start()
    # The page reconnects by itself with ?after= and resends the unacknowledged message.
    carol.wait_connected()
    expect(page.locator("#messages .message[data-seq='2']")).to_contain_text("written while offline")
    expect(page.locator("#messages .message.pending")).to_have_count(0)
    page.reload()
    carol.wait_connected()
    assert carol.message_bodies() == ["before the restart", "written while offline"]


def test_logging_out_in_another_tab_sends_this_tab_to_the_login_page(person, server):
    alice = person("tab-alice")
    alice.login()
    alice.enter_room("lobby")
    other_tab = alice.context.new_page()  # same browser, same session
    other_tab.goto("/")
    other_tab.click("text=Log out")
    other_tab.wait_for_url(lambda url: "/accounts/login/" in url)
    # The first tab's socket was closed with 4401 by the server: the page goes to the login screen.
    alice.page.wait_for_url(lambda url: "/accounts/login/" in url and "next=%2Frooms%2Flobby%2F" in url,
                            timeout=10_000)
    expect(alice.page.locator("input[name=username]")).to_be_visible()
    alice.page.screenshot(path=str(server.workdir / "after-logout.png"))


def test_edits_and_deletions_show_on_the_page_live(person, server):
    import asyncio
    import json

    from tests.support.clients import ws_connect

    bob = person("edit-bob")
    bob.login()
    bob.enter_room("lobby")
    author = server.create_user("edit-alice", "edit-pass-phrase-1")

    async def alice_changes(body, edit_to=None, delete=False):
        async with ws_connect(f"{server.ws_origin}/ws/rooms/lobby/", token=author["token"],
                              ssl_context=server.ssl_context()) as ws:
            json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "message", "body": body, "client_id": f"x-{body}"}))
            while (frame := json.loads(await ws.recv()))["type"] != "ack":
                pass
            message_id = frame["id"]
            if edit_to:
                await ws.send(json.dumps({"type": "edit", "id": message_id, "body": edit_to, "client_id": f"e-{body}"}))
                while json.loads(await ws.recv())["type"] != "ack":
                    pass
            if delete:
                await ws.send(json.dumps({"type": "delete", "id": message_id, "client_id": f"d-{body}"}))
                while json.loads(await ws.recv())["type"] != "ack":
                    pass

    def in_a_thread(coro):  # Playwright's sync API holds this thread's event loop
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, coro).result(timeout=30)

    in_a_thread(alice_changes("teh first", edit_to="the first"))
    edited = bob.page.locator("#messages .message", has_text="the first")
    expect(edited.locator(".message-edited")).to_have_text("(edited)")
    in_a_thread(alice_changes("regret this", delete=True))
    expect(bob.page.locator("#messages .message.deleted .message-body")).to_have_text("message deleted")
    expect(bob.page.locator("#messages .message-body", has_text="regret this")).to_have_count(0)
    bob.page.screenshot(path=str(server.workdir / "edited-and-deleted.png"))
