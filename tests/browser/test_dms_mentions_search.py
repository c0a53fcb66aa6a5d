"""Direct messages, mentions, notifications and search through the page (protocol section 12)."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD
from tests.browser.helpers import HIDE_PAGE, NOTIFICATION_STUB, SHOW_PAGE, Remote, make_users

pytestmark = pytest.mark.browser
# Many sign-ins from one address, and authors who post a few dozen messages in one go.
SERVER_ENV = {"CHAT_LOGIN_BURST": "200", "CHAT_RATE_BURST": "600", "CHAT_RATE_PER_SECOND": "600"}

USERS = ("dm-alice", "dm-bob", "pick-alice", "pick-bob", "pick-bobby", "pick-carol", "men-alice", "men-bob",
         "ta-alice", "ta-bob", "ta-bert", "ta-newbie", "note-alice", "note-bob", "find-alice", "find-bob", "far-alice", "far-bob")


@pytest.fixture(scope="module")
def accounts(server):
    return make_users(server, *USERS, password=PASSWORD)


@pytest.fixture
def on_page(person, accounts):
    """Sign `username` in and show room `slug`; return the Person."""

    def make(username: str, slug: str = "lobby", *, init_script: str | None = None):
        p = person(username, create=False)
        if init_script:
            p.context.add_init_script(init_script)
        p.login()
        p.enter_room(slug)
        expect(p.page.locator("#sidebar")).to_have_attribute("data-state", "open")
        return p

    return make


def sidebar_room(page, slug):
    return page.locator(f"#sidebar .sidebar-room[data-room-slug='{slug}']")


def dm_rows(page):
    return page.locator("#sidebar-dms .sidebar-room")


def test_a_dm_started_from_the_online_list_appears_on_the_other_users_sidebar_and_raises_their_badge(on_page):
    alice, bob = on_page("dm-alice"), on_page("dm-bob")
    expect(dm_rows(bob.page)).to_have_count(0)
    bob_online = alice.page.locator("#online .online-user", has_text="dm-bob")
    # Nobody messages themselves: only the others carry the button.
    expect(alice.page.locator("#online .online-user.me .online-dm")).to_have_count(0)
    bob_online.locator("button.online-dm").click()

    expect(alice.page).to_have_url(re.compile(r"/rooms/dm-[\w-]+/$"))
    slug = alice.page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(alice.page.locator("#room-title")).to_have_text("dm-bob")
    expect(alice.page.locator("#room-private")).to_be_hidden()
    expect(sidebar_room(alice.page, slug)).to_have_class(re.compile(r"\bactive\b"))
    expect(dm_rows(alice.page).locator(".sidebar-name")).to_have_text(["dm-bob"])
    alice.wait_connected()

    # Bob's sidebar hears of it over his user socket, named after Alice; he never reloaded.
    bob_row = dm_rows(bob.page)
    expect(bob_row).to_have_count(1)
    expect(bob_row).to_have_attribute("data-room-slug", slug)
    expect(bob_row.locator(".sidebar-name")).to_have_text("dm-alice")
    alice.send("psst, bob")
    expect(bob_row.locator(".sidebar-badge")).to_have_text("1")
    expect(bob.page).to_have_title("(1) Lobby · Chat")
    expect(bob_row.locator(".sidebar-last")).to_have_text("dm-alice: psst, bob")

    bob_row.locator("a").click()
    expect(bob.page.locator("#room-title")).to_have_text("dm-alice")
    expect(bob.page.locator("#messages .message-body", has_text="psst, bob")).to_be_visible()
    expect(bob_row.locator(".sidebar-badge")).to_be_hidden()
    # The stored name ("dm-alice, dm-bob") never replaces the other user's name once the socket says hello.
    bob.wait_connected()
    expect(bob.page.locator("#room-title")).to_have_text("dm-alice")
    assert alice.console_errors == [] and bob.console_errors == []


def test_the_new_message_picker_suggests_people_as_you_type_and_opens_a_dm(on_page):
    alice = on_page("pick-alice")
    lookups = []
    alice.page.on("request", lambda r: "/api/users/" in r.url and lookups.append(r.url))
    alice.page.locator("#dm-new").click()
    field = alice.page.locator("#dm-input")
    expect(field).to_be_focused()
    field.press_sequentially("pick-b")
    options = alice.page.locator("#dm-suggestions [role=option]")
    expect(options).to_have_text(["pick-bob", "pick-bobby"])
    # One look-up for the whole burst of keys, not one per key.
    assert len(lookups) < len("pick-b"), lookups

    field.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    expect(field).to_have_attribute("aria-activedescendant", "dm-suggestions-1")
    field.press("ArrowDown")  # round to the top
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    field.press("Escape")  # the first Esc closes the list, the second the picker
    expect(options).to_have_count(0)
    field.press("Escape")
    expect(alice.page.locator("#dm-picker")).to_be_hidden()

    alice.page.locator("#dm-new").click()
    alice.page.locator("#dm-input").press_sequentially("PICK-BOBB")  # prefixes match whatever the case
    expect(options).to_have_text(["pick-bobby"])
    alice.page.locator("#dm-input").press("Enter")
    expect(alice.page.locator("#room-title")).to_have_text("pick-bobby")
    expect(alice.page).to_have_url(re.compile(r"/rooms/dm-[\w-]+/$"))
    expect(alice.page.locator("#dm-picker")).to_be_hidden()
    expect(dm_rows(alice.page).locator(".sidebar-name")).to_have_text(["pick-bobby"])
    expect(alice.page.locator("#composer-input")).to_be_focused()
    assert alice.console_errors == []


def test_a_mention_in_a_room_not_shown_raises_the_mention_badge_and_is_highlighted_there(server, accounts, on_page):
    author = Remote(server, accounts["men-alice"])
    author.create_room("mention-room", "Mentions")
    Remote(server, accounts["men-bob"]).visit("mention-room")  # joins it: only members can be mentioned
    bob = on_page("men-bob")
    row = sidebar_room(bob.page, "mention-room")
    expect(row).to_be_visible()
    expect(row.locator(".sidebar-mentions")).to_be_hidden()

    plain = author.post("mention-room", "nothing for bob here")
    mention = author.post("mention-room", "@men-bob, can you look at this?")
    expect(row.locator(".sidebar-badge")).to_have_text("2")
    expect(row.locator(".sidebar-mentions")).to_have_text("@1")
    expect(row.locator(".sidebar-mentions")).to_be_visible()

    row.locator("a").click()
    mentioned = bob.page.locator(f"#messages .message[data-seq='{mention['seq']}']")
    expect(mentioned).to_have_class(re.compile(r"\bmentions-me\b"))
    expect(bob.page.locator(f"#messages .message[data-seq='{plain['seq']}']")).not_to_have_class(
        re.compile(r"\bmentions-me\b"))
    expect(row.locator(".sidebar-mentions")).to_be_hidden()  # read: no longer counted
    assert bob.console_errors == []


def test_the_at_type_ahead_offers_the_rooms_members_and_inserts_the_one_picked(server, accounts, on_page):
    Remote(server, accounts["ta-bob"]).create_room("ta-room", "Type-ahead")
    Remote(server, accounts["ta-bert"]).visit("ta-room")
    alice = on_page("ta-alice", "ta-room")
    box = alice.page.locator("#composer-input")
    options = alice.page.locator("#mention-suggestions [role=option]")
    box.press_sequentially("hi @ta-b")
    expect(options).to_have_text(["@ta-bert", "@ta-bob"])
    box.press("ArrowDown")
    box.press("Tab")
    expect(box).to_have_value("hi @ta-bob ")
    expect(options).to_have_count(0)
    box.press_sequentially("and @TA-BE")
    expect(options).to_have_text(["@ta-bert"])
    box.press("Enter")  # takes the suggestion; it does not send
    expect(box).to_have_value("hi @ta-bob and @ta-bert ")
    box.press_sequentially("@ta")
    expect(options).to_have_count(2)  # never the writer
    box.press("Escape")
    expect(options).to_have_count(0)
    expect(box).to_have_value("hi @ta-bob and @ta-bert @ta")

    # Someone new in the room: the members are read again.
    newbie = on_page("ta-newbie", "ta-room")
    expect(alice.page.locator("#online .online-user", has_text="ta-newbie")).to_be_visible()
    box.press_sequentially("-n")
    expect(options).to_have_text(["@ta-newbie"])
    box.press("Enter")
    box.press("Enter")  # now it sends
    expect(box).to_have_value("")
    sent = alice.page.locator("#messages .message.own", has_text="hi @ta-bob and @ta-bert @ta-newbie")
    expect(sent).to_have_attribute("data-seq", re.compile(r"\d+"))
    status, history = Remote(server, accounts["ta-bob"]).api("GET", "/api/rooms/ta-room/messages/")
    assert status == 200
    assert [u["username"] for u in history["messages"][-1]["mentions"]] == ["ta-bob", "ta-bert", "ta-newbie"]
    assert alice.console_errors == [] and newbie.console_errors == []


def test_a_mention_or_dm_while_the_tab_is_hidden_makes_a_notification_that_leads_to_its_room(
        server, accounts, on_page):
    author = Remote(server, accounts["note-bob"])
    author.create_room("note-room", "Notes")
    Remote(server, accounts["note-alice"]).visit("note-room")
    alice = on_page("note-alice", init_script=NOTIFICATION_STUB)
    page = alice.page
    enable = page.locator("#notify-enable")
    expect(enable).to_be_visible()
    # Loading the page asks nothing: only the reader's click does.
    assert page.evaluate("window.__notifications.requests") == 0

    mentions = sidebar_room(page, "note-room").locator(".sidebar-mentions")
    page.evaluate(HIDE_PAGE)
    author.post("note-room", "@note-alice before you said yes")
    expect(mentions).to_have_text("@1")
    assert page.evaluate("window.__notifications.made.length") == 0  # no permission yet

    page.evaluate(SHOW_PAGE)
    enable.click()
    expect(enable).to_be_hidden()
    assert page.evaluate("window.__notifications.requests") == 1
    author.post("note-room", "@note-alice while you are looking")
    expect(mentions).to_have_text("@2")
    assert page.evaluate("window.__notifications.made.length") == 0  # the tab is in view: the sidebar says it

    page.evaluate(HIDE_PAGE)
    author.post("note-room", "nothing to see")
    author.post("note-room", "@note-alice the minutes, please")
    page.wait_for_function("() => window.__notifications.made.length >= 1")
    dm = author.open_dm("note-alice")
    author.post(dm["slug"], "a word in private")
    page.wait_for_function("() => window.__notifications.made.length >= 2")
    made = page.evaluate("window.__notifications.made.map(n => ({ title: n.title, body: n.body }))")
    assert made == [
        {"title": "note-bob mentioned you in Notes", "body": "@note-alice the minutes, please"},
        {"title": "note-bob", "body": "a word in private"},
    ]

    page.evaluate("window.__notifications.made[0].onclick(new Event('click'))")
    expect(page).to_have_url(re.compile(r"/rooms/note-room/$"))
    expect(page.locator("#room-title")).to_have_text("Notes")
    assert page.evaluate("window.__notifications.made[0].closed") is True
    assert alice.console_errors == []


def test_a_search_result_from_another_room_opens_there_at_the_message_and_private_rooms_stay_private(
        server, accounts, on_page):
    author = Remote(server, accounts["find-alice"])
    author.create_room("find-room", "Find Room")
    author.create_room("find-secret", "Secret", private=True)
    author.post("find-secret", "quokka secret plans")
    target = author.post("find-room", "the quokka census is due on Friday")
    # Well over a page of newer messages, so the target is not among the ones a room shows first.
    author.post_many("find-room", [f"wombat report {i}" for i in range(25)] + [f"filler {i}" for i in range(35)])
    bob = on_page("find-bob")
    page = bob.page

    page.locator("#search-input").fill("QUOKKA")
    page.locator("#search-input").press("Enter")
    panel = page.locator("#search-panel")
    expect(panel).to_be_visible()
    hits = panel.locator(".search-hit")
    # One hit: the private room's message is never found by a non-member.
    expect(hits).to_have_count(1)
    expect(page.locator("#search-status")).to_have_text("1 message found, newest first.")
    hit = hits.first
    expect(hit.locator(".search-room")).to_have_text("Find Room")  # a room Bob never joined
    expect(hit.locator(".search-author")).to_have_text("find-alice")
    expect(hit.locator(".search-text")).to_have_text("the quokka census is due on Friday")
    expect(hit.locator("mark")).to_have_text("quokka")
    expect(page.locator("#search-more")).to_be_hidden()

    hit.click()
    expect(panel).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/rooms/find-room/$"))
    expect(page.locator("#room-title")).to_have_text("Find Room")
    message = page.locator(f"#messages .message[data-seq='{target['seq']}']")
    expect(message).to_have_class(re.compile(r"\bjump-target\b"))
    expect(message).to_be_in_viewport()
    expect(message.locator(".message-body")).to_have_text("the quokka census is due on Friday")
    # Loaded as a whole: every message from the target to the newest, none missing in between.
    last = target["seq"] + 60
    assert page.evaluate("[window.chatDebug.lowestSeq, window.chatDebug.highestSeq]") == [1, last]
    expect(page.locator("#messages > .message")).to_have_count(last)
    expect(page.locator("#messages .timeline-hole")).to_have_count(0)

    # Twenty a page; "Load more" asks for the ones before the last shown.
    page.locator("#search-input").fill("wombat")
    page.locator("#search-input").press("Enter")
    expect(hits).to_have_count(20)
    expect(hits.first.locator(".search-text")).to_have_text("wombat report 24")
    page.locator("#search-more").click()
    expect(hits).to_have_count(25)
    expect(hits.last.locator(".search-text")).to_have_text("wombat report 0")
    expect(page.locator("#search-more")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert bob.console_errors == []


def test_a_search_result_far_back_shows_its_neighbourhood_and_the_messages_in_between_on_request(
        server, accounts, on_page):
    author = Remote(server, accounts["far-alice"])
    author.create_room("far-room", "Far Room")
    target = author.post("far-room", "the narwhal sighting of last spring")
    # More newer messages than the page pages in for a jump (500): it loads the target's neighbourhood alone.
    author.post_many("far-room", [f"later news {i}" for i in range(559)])
    bob = on_page("far-bob")
    page = bob.page
    page.locator("#search-input").fill("narwhal")
    page.locator("#search-input").press("Enter")
    page.locator("#search-panel .search-hit").click()

    message = page.locator(f"#messages .message[data-seq='{target['seq']}']")
    expect(message).to_have_class(re.compile(r"\bjump-target\b"))
    expect(message).to_be_in_viewport()
    hole = page.locator("#messages .timeline-hole")
    # 51 messages from the target on (none come before it), then a gap up to the newest 50, which
    # the room's socket said hello with.
    assert target["seq"] == 1
    expect(hole).to_have_count(1)
    expect(hole).to_have_attribute("data-after", "51")
    expect(hole.locator("button")).to_have_text("Load 459 messages not shown here")
    expect(page.locator("#messages > .message")).to_have_count(51 + 50)

    hole.locator("button").click()
    expect(page.locator("#messages > .message")).to_have_count(560)
    expect(hole).to_have_count(0)
    seqs = page.locator("#messages > .message").evaluate_all("nodes => nodes.map(n => Number(n.dataset.seq))")
    assert seqs == list(range(1, 561))
    assert bob.console_errors == []
