"""Editing and deleting through the page, safe links, day separators, and edits missed while offline."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD
from tests.browser.helpers import Remote, SocketTap, make_users

pytestmark = pytest.mark.browser
# Every test signs in through the form; the default sign-in burst would throttle the module.
SERVER_ENV = {"CHAT_LOGIN_BURST": "200"}
XSS = "<img src=x onerror=alert(1)>"


# Every user of the module, made in one `manage.py shell` run (each run costs seconds).
USERS = ("up-alice", "up-bob", "del-alice", "del-bob", "late-alice", "late-bob", "link-reader", "link-author",
         "xss-reader", "xss-author", "away-reader", "away-author", "day-reader", "day-author", "window-alice",
         "window-bob")


@pytest.fixture(scope="module")
def accounts(server):
    return make_users(server, *USERS, password=PASSWORD)


@pytest.fixture
def pair(person, server, accounts):
    """A reader signed in on the page in the lobby, and a Remote author acting over the socket."""

    def make(reader: str, author: str):
        users = accounts
        p = person(reader, create=False)
        p.login()
        p.enter_room("lobby")
        return p, Remote(server, users[author])

    return make


def own_message(p, text):
    return p.page.locator("#messages .message.own", has_text=text)


def test_up_arrow_in_an_empty_composer_edits_the_last_own_message(pair):
    alice, bob = pair("up-alice", "up-bob")
    alice.send("my first line")
    alice.send("my secnod line")
    expect(own_message(alice, "my secnod line")).to_have_attribute("data-seq", re.compile(r"\d+"))
    bob.post("lobby", "bob speaks last")  # the newest message is not hers: Up still finds her own
    expect(alice.page.locator("#messages .message-body", has_text="bob speaks last")).to_be_visible()
    box = alice.page.locator("#composer-input")

    # Esc leaves edit mode with nothing sent.
    box.press("ArrowUp")
    expect(box).to_have_value("my secnod line")
    expect(alice.page.locator("#edit-banner")).to_have_text("Editing message — Esc to cancel")
    expect(own_message(alice, "my secnod line")).to_have_class(re.compile(r"\bediting\b"))
    box.press("Escape")
    expect(box).to_have_value("")
    expect(alice.page.locator("#edit-banner")).to_be_hidden()

    # Up in a composer holding text moves the caret, it does not edit.
    box.fill("a draft")
    box.press("ArrowUp")
    expect(alice.page.locator("#edit-banner")).to_be_hidden()
    box.fill("")

    box.press("ArrowUp")
    box.fill("my second line")
    box.press("Enter")
    edited = own_message(alice, "my second line")
    expect(edited.locator(".message-edited")).to_have_text("(edited)")
    expect(alice.page.locator("#edit-banner")).to_be_hidden()
    expect(box).to_have_value("")
    # An edit, not a new message: same seq count, the first line untouched.
    expect(alice.page.locator("#messages .message")).to_have_count(3)
    expect(own_message(alice, "my first line").locator(".message-edited")).to_have_count(0)
    assert alice.console_errors == []


def test_delete_asks_first_and_only_a_confirmed_delete_is_sent(pair):
    alice, bob = pair("del-alice", "del-bob")
    alice.send("keep me")
    alice.send("delete me")
    target = own_message(alice, "delete me")
    expect(target).to_have_attribute("data-seq", re.compile(r"\d+"))
    dialog = alice.page.locator("#confirm-delete")

    target.hover()
    target.locator("button.message-delete").click()
    expect(dialog).to_be_visible()
    expect(dialog.locator(".confirm-preview")).to_have_text("delete me")
    dialog.locator("button[data-choice=cancel]").click()
    expect(dialog).to_be_hidden()
    expect(target.locator(".message-body")).to_have_text("delete me")

    target.hover()
    target.locator("button.message-delete").click()
    dialog.locator("button[data-choice=delete]").click()
    gone = alice.page.locator("#messages .message.deleted")
    expect(gone.locator(".message-body")).to_have_text("message deleted")
    expect(gone.locator(".message-actions")).to_have_count(0)
    expect(alice.page.locator("#messages .message-body", has_text="keep me")).to_be_visible()
    # Others' messages carry no Edit or Delete.
    bob.post("lobby", "not yours")
    expect(alice.page.locator("#messages .message", has_text="not yours").locator(".message-actions")).to_have_count(0)
    assert alice.dialogs == []


def test_a_refused_edit_shows_the_servers_error_as_a_notice(pair, server):
    alice, _ = pair("late-alice", "late-bob")
    alice.send("written long ago")
    message = own_message(alice, "written long ago")
    expect(message).to_have_attribute("data-id", re.compile(r"\d+"))
    # Past the edit window (an hour by default): the server answers too_late.
    server.run_python(
        "import json, datetime; from django.utils import timezone; from chat.models import Message;"
        f"Message.objects.filter(pk={message.get_attribute('data-id')})"
        ".update(created=timezone.now() - datetime.timedelta(hours=2)); print(1)"
    )
    message.hover()
    message.locator("button.message-edit").click()
    box = alice.page.locator("#composer-input")
    expect(box).to_have_value("written long ago")
    box.fill("too late to fix")
    box.press("Enter")
    expect(alice.page.locator("#notice")).to_be_visible()
    expect(alice.page.locator("#notice")).to_have_attribute("data-kind", "error")
    expect(alice.page.locator("#notice")).not_to_be_empty()
    expect(message.locator(".message-body")).to_have_text("written long ago")


def test_the_edit_button_goes_when_the_edit_window_closes(person, accounts):
    alice = person("window-alice", create=False)
    alice.page.clock.install()  # the page's clock, so an hour can pass at once
    alice.login()
    alice.enter_room("lobby")
    alice.send("fresh enough")
    message = own_message(alice, "fresh enough")
    expect(message).to_have_attribute("data-id", re.compile(r"\d+"))
    expect(message.locator("button.message-edit")).to_have_count(1)

    alice.page.clock.fast_forward("01:00:05")  # the server's default window is an hour
    expect(message.locator("button.message-edit")).to_have_count(0)
    expect(message.locator("button.message-delete")).to_have_count(1)
    box = alice.page.locator("#composer-input")
    box.press("ArrowUp")
    expect(alice.page.locator("#edit-banner")).to_be_hidden()
    expect(box).to_have_value("")


def test_only_http_and_https_addresses_become_links_with_a_safe_rel(pair):
    reader, author = pair("link-reader", "link-author")
    author.post("lobby", "see https://example.com/a?b=1&c=2, or (http://example.org/wiki/X_(y)). "
                         "javascript:alert(1) data:text/html,<b>x</b> ftp://example.net/f //evil.test/x")
    body = reader.page.locator("#messages .message-body", has_text="javascript:alert(1)")
    links = body.locator("a")
    expect(links).to_have_count(2)
    expect(links.nth(0)).to_have_attribute("href", "https://example.com/a?b=1&c=2")
    expect(links.nth(0)).to_have_text("https://example.com/a?b=1&c=2")
    expect(links.nth(1)).to_have_attribute("href", "http://example.org/wiki/X_(y)")
    for i in range(2):
        expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer nofollow")
        expect(links.nth(i)).to_have_attribute("target", "_blank")
    # The text reads exactly as written, links included.
    expect(body).to_have_text("see https://example.com/a?b=1&c=2, or (http://example.org/wiki/X_(y)). "
                              "javascript:alert(1) data:text/html,<b>x</b> ftp://example.net/f //evil.test/x")
    assert body.locator("b").count() == 0


def test_html_and_javascript_links_in_an_edit_stay_text(pair):
    reader, author = pair("xss-reader", "xss-author")
    ack = author.post("lobby", "an innocent start")
    expect(reader.page.locator("#messages .message-body", has_text="an innocent start")).to_be_visible()
    payload = f"{XSS} [click](javascript:alert(1)) javascript:alert(1) <a href=javascript:alert(1)>x</a>"
    author.edit("lobby", ack["id"], payload)
    message = reader.page.locator(f"#messages .message[data-seq='{ack['seq']}']")
    expect(message.locator(".message-edited")).to_have_text("(edited)")
    expect(message.locator(".message-body")).to_have_text(payload)
    assert message.locator(".message-body a, .message-body img").count() == 0
    assert reader.page.evaluate("document.querySelectorAll('#messages img, a[href^=\"javascript\"]').length") == 0
    assert reader.dialogs == []


def test_an_edit_made_while_the_page_was_offline_shows_after_it_reconnects(person, server, accounts):
    reader = person("away-reader", create=False)
    author = Remote(server, accounts["away-author"])
    tap = SocketTap(reader.page)
    reader.login()
    reader.enter_room("lobby")
    ack = author.post("lobby", "the draft version")
    deleted = author.post("lobby", "soon gone")
    expect(reader.page.locator("#messages .message-body", has_text="soon gone")).to_be_visible()

    reader.page.evaluate("window.sameDocument = true")
    reader.context.set_offline(True)
    tap.cut()
    expect(reader.page.locator("#connection-state")).to_have_attribute("data-state", "reconnecting")
    author.edit("lobby", ack["id"], "the final version")
    author.delete("lobby", deleted["id"])
    tap.restore()
    reader.context.set_offline(False)  # the page hears "online" and reconnects at once

    reader.wait_connected()
    message = reader.page.locator(f"#messages .message[data-seq='{ack['seq']}']")
    expect(message.locator(".message-body")).to_have_text("the final version")
    expect(message.locator(".message-edited")).to_have_text("(edited)")
    expect(reader.page.locator(f"#messages .message[data-seq='{deleted['seq']}']")).to_have_class(
        re.compile(r"\bdeleted\b"))
    # Caught up by the reconnect's ?after=&since=, not by a reload: the page is the same one.
    assert reader.page.evaluate("window.sameDocument") is True


def test_day_separators_divide_messages_of_different_local_days(pair, server):
    reader, author = pair("day-reader", "day-author")
    acks = [author.post("lobby", f"day message {i}") for i in range(4)]
    # Backdate: three days ago, yesterday, yesterday, and the last one today.
    server.run_python(
        "import json, datetime; from django.utils import timezone; from chat.models import Message;"
        f"ids = {[a['id'] for a in acks]!r}; now = timezone.now();"
        "Message.objects.filter(pk=ids[0]).update(created=now - datetime.timedelta(days=3));"
        "Message.objects.filter(pk__in=ids[1:3]).update(created=now - datetime.timedelta(days=1)); print(1)"
    )
    reader.page.reload()
    reader.wait_connected()
    items = reader.page.locator("#messages > li")
    expect(reader.page.locator("#messages .message-body", has_text="day message 3")).to_be_visible()
    labels = [(cls, text) for cls, text in items.evaluate_all(
        "nodes => nodes.map(n => [n.className, n.textContent])") if "day message" in text or "separator" in cls]
    kinds = [("sep:" + text) if "day-separator" in cls else text.split("day message ")[-1][:1] for cls, text in labels]
    assert kinds[-7:] == [kinds[-7], "0", "sep:Yesterday", "1", "2", "sep:Today", "3"], kinds
    assert kinds[-7].startswith("sep:") and kinds[-7] not in ("sep:Today", "sep:Yesterday")
