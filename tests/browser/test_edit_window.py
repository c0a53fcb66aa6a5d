"""A server with edits off (CHAT_EDIT_WINDOW=0): the page offers no way to edit, only to delete."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
SERVER_ENV = {"CHAT_EDIT_WINDOW": "0"}


def test_with_edits_off_own_messages_have_no_edit_button_and_up_does_not_edit(person):
    alice = person("off-alice")
    alice.login()
    alice.enter_room("lobby")
    assert alice.page.evaluate("JSON.parse(document.getElementById('chat-config').textContent).edit_window_s") == 0
    alice.send("set in stone")
    message = alice.page.locator("#messages .message.own", has_text="set in stone")
    expect(message).to_have_attribute("data-id", re.compile(r"\d+"))
    message.hover()
    expect(message.locator("button.message-delete")).to_be_visible()
    expect(message.locator("button.message-edit")).to_have_count(0)

    box = alice.page.locator("#composer-input")
    box.press("ArrowUp")
    expect(alice.page.locator("#edit-banner")).to_be_hidden()
    expect(box).to_have_value("")
    # Nor after a reload, when the message comes from the server's history.
    alice.page.reload()
    alice.wait_connected()
    expect(message.locator("button.message-delete")).to_have_count(1)
    expect(message.locator("button.message-edit")).to_have_count(0)
    assert alice.console_errors == []
