"""Screenshots of the page's DM, mention and search views: `python -m tests.browser.screenshots [DIR]`.

Starts its own live server, fills it with a few users and messages, and writes dm.png,
dm-picker.png, mention.png, search.png and mention-typeahead.png (and -narrow variants) into DIR
(/tmp/shots by default). Not a test: for looking at.
"""

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.browser.conftest import CHROMIUM, PASSWORD
from tests.browser.helpers import Remote, make_users
from tests.support.server import live_server

WIDE = {"width": 1280, "height": 760}
NARROW = {"width": 390, "height": 760}


def sign_in(browser, server, username, viewport):
    context = browser.new_context(ignore_https_errors=True, base_url=server.origin, viewport=viewport)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form [type=submit]")
    page.wait_for_url(server.origin + "/")
    return page


def open_room(page, slug):
    page.goto(f"/rooms/{slug}/")
    page.wait_for_selector("#connection-state[data-state=open]")
    page.wait_for_selector("#sidebar[data-state=open]")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {"CHAT_LOGIN_BURST": "200", "CHAT_RATE_BURST": "200"}
    with tempfile.TemporaryDirectory() as tmp, live_server(Path(tmp), static=True, extra_env=env) as server:
        users = make_users(server, "alice", "bob", "carol", "dave", "bert", password=PASSWORD)
        alice, bob, carol = (Remote(server, users[name]) for name in ("alice", "bob", "carol"))
        bob.create_room("design", "Design review")
        carol.create_room("ops", "Ops")
        for r in (alice, carol, Remote(server, users["dave"]), Remote(server, users["bert"])):
            r.visit("design")
        alice.visit("ops")
        bob.post_many("design", ["Morning! The new sidebar mock-ups are in the drive.",
                                 "Can everyone have a look before Thursday?"])
        carol.post("ops", "Deploy window moves to 14:00 UTC.")
        dm = bob.open_dm("alice")
        bob.post(dm["slug"], "Hey, got a minute to talk about the search panel?")
        carol.open_dm("alice")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            for suffix, viewport in (("", WIDE), ("-narrow", NARROW)):
                # A fresh mention each round: the round before read the last one.
                carol.post("design", "@alice could you check the contrast on the DM section?")
                page = sign_in(browser, server, "alice", viewport)
                # Bob in the design room too, so the online list offers a "Message" button.
                other = sign_in(browser, server, "bob", viewport)
                open_room(other, "design")
                # The mention: shown in the sidebar (@1), then highlighted in its room.
                open_room(page, "lobby")
                expect(page.locator(".sidebar-room[data-room-slug='design'] .sidebar-mentions")).to_have_text("@1")
                if suffix:
                    page.screenshot(path=out / f"sidebar{suffix}.png")
                page.locator(".sidebar-room[data-room-slug='design'] a").click()
                page.wait_for_selector(".message.mentions-me")
                # And one more in a room not shown: its row carries the @ badge.
                carol.post("ops", "@alice the deploy needs your sign-off")
                expect(page.locator(".sidebar-room[data-room-slug='ops'] .sidebar-mentions")).to_be_visible()
                page.screenshot(path=out / f"mention{suffix}.png")
                # The @ type-ahead over the room's members.
                page.locator("#composer-input").press_sequentially("Thanks @b")
                page.wait_for_selector("#mention-suggestions [role=option]")
                page.screenshot(path=out / f"mention-typeahead{suffix}.png")
                page.locator("#composer-input").press("Escape")
                page.locator("#composer-input").fill("")
                # A DM open, the DM section in the sidebar.
                page.locator(f".sidebar-room[data-room-slug='{dm['slug']}'] a").click()
                page.wait_for_selector("#connection-state[data-state=open]")
                page.locator("#composer-input").fill("Sure, after lunch?")
                page.locator("#composer-input").press("Enter")
                page.wait_for_selector("#messages .message.own[data-seq]")
                page.screenshot(path=out / f"dm{suffix}.png")
                # The New message picker, with its suggestions.
                page.locator("#dm-new").click()
                page.locator("#dm-input").press_sequentially("d")
                page.wait_for_selector("#dm-suggestions [role=option]")
                page.screenshot(path=out / f"dm-picker{suffix}.png")
                page.locator("#dm-input").press("Escape")
                page.locator("#dm-input").press("Escape")
                # Search results.
                page.locator("#search-input").fill("the")
                page.locator("#search-input").press("Enter")
                page.wait_for_selector("#search-results .search-hit")
                page.screenshot(path=out / f"search{suffix}.png")
                page.context.close()
                other.context.close()
            browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/shots"))
