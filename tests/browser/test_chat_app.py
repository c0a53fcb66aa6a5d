"""The page as a chat app: the sidebar on the user socket, unread badges across tabs, the read
cursor, room switching without a page load, the per-room cache and the unread divider."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD
from tests.browser.helpers import Remote, SocketTap, make_users

pytestmark = pytest.mark.browser
SERVER_ENV = {"CHAT_LOGIN_BURST": "200"}
BADGE_ROOM = "Newsroom"
# The page sends at most one read per 500 ms; a read that is not sent can only be shown by waiting longer.
READ_THROTTLE_MARGIN_MS = 800


def sidebar_room(page, slug):
    return page.locator(f"#sidebar .sidebar-room[data-room-slug='{slug}']")


def expect_badge(page, slug, count):
    badge = sidebar_room(page, slug).locator(".sidebar-badge")
    if count:
        expect(badge).to_have_text(str(count))
        expect(badge).to_be_visible()
    else:
        expect(badge).to_be_hidden()


# Every user of the module, made in one `manage.py shell` run (each run costs seconds).
USERS = ("badge-alice", "badge-bob", "read-alice", "read-bob", "switch-alice", "switch-bob", "cache-alice", "cache-bob",
         "div-alice", "div-bob", "focus-alice", "focus-bob")


@pytest.fixture(scope="module")
def accounts(server):
    return make_users(server, *USERS, password=PASSWORD)


@pytest.fixture
def setup(person, server, accounts):
    """A reader on the page in the lobby, an author, and a public room `slug` both have joined."""

    def make(reader: str, author: str, slug: str):
        users = accounts
        writer = Remote(server, users[author])
        writer.create_room(slug, BADGE_ROOM)
        Remote(server, users[reader]).visit(slug)  # opening it once joins it
        p = person(reader, create=False)
        p.login()
        p.enter_room("lobby")
        expect(sidebar_room(p.page, slug)).to_be_visible()
        return p, writer

    return make


def second_tab(p, path="/rooms/lobby/"):
    tab = p.context.new_page()
    tab.goto(path)
    tab.wait_for_selector("#connection-state[data-state=open]")
    return tab


def test_a_message_in_another_room_raises_its_badge_in_both_tabs_and_the_title_counts_it(setup):
    alice, bob = setup("badge-alice", "badge-bob", "news-badge")
    other = second_tab(alice)
    tabs = (alice.page, other)
    for tab in tabs:
        expect_badge(tab, "news-badge", 0)
        expect(tab).to_have_title("Lobby · Chat")

    first = bob.post("news-badge", "breaking: the kettle boiled")
    for tab in tabs:
        expect_badge(tab, "news-badge", 1)
        expect(tab).to_have_title("(1) Lobby · Chat")
        row = sidebar_room(tab, "news-badge")
        expect(row.locator(".sidebar-last")).to_have_text("badge-bob: breaking: the kettle boiled")
        expect(row).to_have_class(re.compile(r"\bhas-unread\b"))
    bob.post("news-badge", "and again")
    for tab in tabs:
        expect_badge(tab, "news-badge", 2)
        expect(tab).to_have_title("(2) Lobby · Chat")
    # The room with news moved to the top.
    expect(alice.page.locator("#sidebar-rooms .sidebar-room").first).to_have_attribute("data-room-slug", "news-badge")

    # A deleted message is no longer unread, and the last one reads "message deleted".
    last = bob.post("news-badge", "oops, wrong room")
    expect_badge(other, "news-badge", 3)
    bob.delete("news-badge", last["id"])
    for tab in tabs:
        expect_badge(tab, "news-badge", 2)
        expect(sidebar_room(tab, "news-badge").locator(".sidebar-last")).to_have_text("badge-bob: message deleted")
    assert first["seq"] == 1
    assert alice.console_errors == []


def test_reading_a_room_in_one_tab_clears_its_badge_in_the_other(setup):
    alice, bob = setup("read-alice", "read-bob", "news-read")
    other = second_tab(alice)
    bob.post("news-read", "read me")
    for tab in (alice.page, other):
        expect_badge(tab, "news-read", 1)

    sidebar_room(alice.page, "news-read").locator("a").click()
    expect(alice.page.locator("#messages .message-body", has_text="read me")).to_be_visible()
    # Seen in the first tab (newest message in view, tab focused): the cursor moves for every tab.
    expect_badge(other, "news-read", 0)
    expect(other).to_have_title("Lobby · Chat")
    expect_badge(alice.page, "news-read", 0)
    expect(alice.page).to_have_title(f"{BADGE_ROOM} · Chat")
    assert alice.console_errors == []


def test_switching_rooms_needs_no_page_load_and_back_and_forward_work(setup):
    alice, bob = setup("switch-alice", "switch-bob", "news-switch")
    tap = SocketTap(alice.page)
    alice.page.reload()
    alice.wait_connected()
    bob.post("news-switch", "only in the newsroom")
    alice.send("only in the lobby")
    expect(alice.page.locator("#messages .message-body", has_text="only in the lobby")).to_be_visible()
    alice.page.evaluate("window.stillTheSamePage = 'yes'")

    sidebar_room(alice.page, "news-switch").locator("a").click()
    expect(alice.page).to_have_url(re.compile(r"/rooms/news-switch/$"))
    expect(alice.page.locator("#room-title")).to_have_text(BADGE_ROOM)
    expect(alice.page.locator("#messages .message-body", has_text="only in the newsroom")).to_be_visible()
    expect(alice.page.locator("#messages .message-body", has_text="only in the lobby")).to_have_count(0)
    alice.wait_connected()
    expect(sidebar_room(alice.page, "news-switch")).to_have_class(re.compile(r"\bactive\b"))
    assert alice.page.evaluate("window.stillTheSamePage") == "yes"
    # The lobby's socket was closed: one room socket at a time.
    expect(alice.page.locator("#online li[data-user-id]")).to_have_count(1)
    assert tap.open_count == 1

    alice.page.go_back()
    expect(alice.page).to_have_url(re.compile(r"/rooms/lobby/$"))
    expect(alice.page.locator("#room-title")).to_have_text("Lobby")
    expect(alice.page.locator("#messages .message-body", has_text="only in the lobby")).to_be_visible()
    alice.page.go_forward()
    expect(alice.page).to_have_url(re.compile(r"/rooms/news-switch/$"))
    expect(alice.page.locator("#messages .message-body", has_text="only in the newsroom")).to_be_visible()
    assert alice.page.evaluate("window.stillTheSamePage") == "yes"
    # The room directory is one click away.
    expect(alice.page.locator("#sidebar a.sidebar-directory")).to_have_attribute("href", "/")
    assert alice.console_errors == []


def test_a_room_returned_to_shows_its_cache_at_once_and_catches_up_with_after_and_since(setup):
    alice, bob = setup("cache-alice", "cache-bob", "news-cache")
    tap = SocketTap(alice.page, r"/ws/rooms/news-cache/")
    sidebar_room(alice.page, "news-cache").locator("a").click()
    alice.wait_connected()
    ack = bob.post("news-cache", "first take")
    expect(alice.page.locator("#messages .message-body", has_text="first take")).to_be_visible()

    sidebar_room(alice.page, "lobby").locator("a").click()
    alice.wait_connected()
    bob.edit("news-cache", ack["id"], "second take")
    bob.post("news-cache", "posted while she was away")
    expect_badge(alice.page, "news-cache", 1)  # an edit of a message read already is not unread

    sidebar_room(alice.page, "news-cache").locator("a").click()
    message = alice.page.locator(f"#messages .message[data-seq='{ack['seq']}']")
    expect(message.locator(".message-body")).to_have_text("second take")
    expect(message.locator(".message-edited")).to_have_text("(edited)")
    expect(alice.page.locator("#messages .message-body", has_text="posted while she was away")).to_be_visible()
    query = parse_qs(urlsplit(tap.urls[-1]).query)
    assert query["after"] == [str(ack["seq"])] and "since" in query, tap.urls
    assert len(tap.urls) == 2


def test_opening_a_room_marks_where_the_unread_messages_begin(setup):
    alice, bob = setup("div-alice", "div-bob", "news-div")
    sidebar_room(alice.page, "news-div").locator("a").click()
    alice.wait_connected()
    bob.post("news-div", "already seen")
    expect_badge(alice.page, "news-div", 0)  # read at once: in view, tab focused
    expect(alice.page.locator("#messages .unread-divider")).to_have_count(0)

    sidebar_room(alice.page, "lobby").locator("a").click()
    alice.wait_connected()
    first_unread = bob.post("news-div", "new one")
    bob.post("news-div", "another new one")
    expect_badge(alice.page, "news-div", 2)

    sidebar_room(alice.page, "news-div").locator("a").click()
    divider = alice.page.locator("#messages .unread-divider")
    expect(divider).to_have_text("Unread messages")
    expect(divider).to_be_in_viewport()
    following = alice.page.locator("#messages .unread-divider + .message")
    expect(following).to_have_attribute("data-seq", str(first_unread["seq"]))
    # It stays while the room is shown, even as more arrives and is read.
    expect_badge(alice.page, "news-div", 0)
    bob.post("news-div", "and a third")
    expect(alice.page.locator("#messages .message-body", has_text="and a third")).to_be_visible()
    expect(divider).to_have_count(1)
    expect(following).to_have_attribute("data-seq", str(first_unread["seq"]))


def test_a_read_is_sent_only_for_a_focused_tab_scrolled_to_the_newest_message(setup):
    alice, bob = setup("focus-alice", "focus-bob", "news-focus")
    alice.page.set_viewport_size({"width": 1000, "height": 420})
    tap = SocketTap(alice.page)
    sidebar_room(alice.page, "news-focus").locator("a").click()
    alice.wait_connected()
    for i in range(8):
        bob.post("news-focus", f"line {i}\nwith a second row")
    expect_badge(alice.page, "news-focus", 0)
    seen = max(frame["seq"] for frame in tap.frames("read"))

    # Not focused: the message shows but stays unread.
    alice.page.evaluate("document.hasFocus = () => false")
    bob.post("news-focus", "while you were away")
    expect(alice.page.locator("#messages .message-body", has_text="while you were away")).to_be_visible()
    expect_badge(alice.page, "news-focus", 1)
    expect(alice.page).to_have_title(f"(1) {BADGE_ROOM} · Chat")
    alice.page.wait_for_timeout(READ_THROTTLE_MARGIN_MS)
    assert max(frame["seq"] for frame in tap.frames("read")) == seen
    expect_badge(alice.page, "news-focus", 1)
    # Focus comes back: read.
    alice.page.evaluate("delete document.hasFocus; window.dispatchEvent(new Event('focus'))")
    expect_badge(alice.page, "news-focus", 0)
    expect(alice.page).to_have_title(f"{BADGE_ROOM} · Chat")

    # Scrolled up, away from the newest message: unread again until the reader scrolls down.
    alice.page.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
    seen = max(frame["seq"] for frame in tap.frames("read"))
    bob.post("news-focus", "below the fold")
    expect_badge(alice.page, "news-focus", 1)
    alice.page.wait_for_timeout(READ_THROTTLE_MARGIN_MS)
    assert max(frame["seq"] for frame in tap.frames("read")) == seen
    expect_badge(alice.page, "news-focus", 1)
    alice.page.locator("#messages").evaluate("list => { list.scrollTop = list.scrollHeight; }")
    expect_badge(alice.page, "news-focus", 0)
    reads = [frame["seq"] for frame in tap.frames("read")]
    assert reads == sorted(set(reads)), reads  # only ever forward, never the same seq twice
