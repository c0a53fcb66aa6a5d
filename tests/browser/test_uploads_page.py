"""Attachments through the real room page: the file button, drag and drop, the client-side limit."""

import re
import struct
import zlib

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

LIMIT = 10 * 1024 * 1024  # the server's default attachment limit, which the page reads from #chat-config
PENDING = re.compile(r"\bpending\b")
FAILED = re.compile(r"\bfailed\b")


def png_1x1() -> bytes:
    """Return a valid 1x1 opaque RGB PNG, built chunk by chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit, truecolour
    pixels = zlib.compress(b"\x00" + b"\x25\x57\xd6")  # filter byte, then one RGB pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def in_room(person, *names: str, slug: str = "lobby"):
    people = [person(name) for name in names]
    for p in people:
        p.login()
        p.enter_room(slug)
    expect(people[0].page.locator("#online li[data-user-id]")).to_have_count(len(people))
    return people


def attach(p, name: str, mime: str, data: bytes) -> None:
    p.page.set_input_files("#attach-input", files=[{"name": name, "mimeType": mime, "buffer": data}])


def test_an_image_arrives_as_a_thumbnail_loaded_from_the_member_only_url(person, server):
    alice, bob = in_room(person, "pic-alice", "pic-bob")
    png = png_1x1()
    alice.page.locator("#composer-input").fill("a tiny dot")
    attach(alice, "dot.png", "image/png", png)

    # The sender sees it at once, pending, with the name; the caption left the composer.
    own = alice.page.locator("#messages .message.own", has_text="a tiny dot")
    expect(own).to_have_count(1)
    expect(own).to_have_attribute("data-client-id", re.compile(r".+"))
    expect(alice.page.locator("#composer-input")).to_have_value("")

    message = bob.page.locator("#messages .message", has_text="a tiny dot")
    thumb = message.locator("a.attachment-image > img.attachment-thumb")
    expect(thumb).to_have_attribute("alt", "dot.png")
    expect(thumb).to_have_attribute("loading", "lazy")
    link = message.locator("a.attachment-image")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener")
    expect(link).to_have_attribute("href", re.compile(rf"^{re.escape(server.origin)}/rooms/lobby/files/\d+/$"))
    # naturalWidth 1: the bytes came back through the member-only download view and decoded.
    thumb.evaluate(
        "img => img.complete && img.naturalWidth ? null"
        " : new Promise((ok, fail) => { img.addEventListener('load', ok); img.addEventListener('error', fail); })"
    )
    assert thumb.evaluate("img => img.naturalWidth") == 1

    # The sender's copy is confirmed: seq, no pending/uploading state, the stored file in place of the preview.
    expect(own).not_to_have_class(PENDING)
    expect(own).to_have_attribute("data-seq", re.compile(r"^\d+$"))
    expect(own.locator(".upload-progress")).to_have_count(0)
    expect(own.locator("img.attachment-thumb")).to_have_attribute("src", re.compile(r"/rooms/lobby/files/\d+/$"))
    assert alice.console_errors == [] and bob.console_errors == []


def test_a_text_file_is_a_download_link_whose_href_returns_the_bytes(person):
    alice, bob = in_room(person, "txt-alice", "txt-bob")
    data = b"first line\nsecond line \xe2\x9c\x93\n" * 100_000  # 2.6 MB: progress has something to show
    # Every progress text the sender's page shows, as the DOM changes.
    alice.page.evaluate(
        """() => {
            window.seenProgress = new Set();
            new MutationObserver(() => {
                for (const s of document.querySelectorAll('#messages .uploading .upload-status')) {
                    window.seenProgress.add(s.textContent);
                }
            }).observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
        }"""
    )
    attach(alice, "notes.txt", "text/plain", data)

    link = bob.page.locator("#messages a.attachment-link", has_text="notes.txt")
    expect(link).to_have_text("notes.txt · 2.6 MB")
    expect(link).to_have_attribute("download", "notes.txt")
    href = link.get_attribute("href")
    assert href and href.startswith(bob.server.origin + "/rooms/lobby/files/")
    response = bob.page.request.get(href)
    assert response.status == 200
    assert response.body() == data
    expect(alice.page.locator("#messages .message.own", has=alice.page.locator("a.attachment-link"))).not_to_have_class(
        PENDING
    )
    seen = alice.page.evaluate("[...window.seenProgress]")
    assert seen and all(re.fullmatch(r"Waiting to upload…|Uploading \d{1,3}%", text) for text in seen), seen
    assert any(text.startswith("Uploading") for text in seen), seen
    assert alice.console_errors == [] and bob.console_errors == []


def test_a_file_over_the_limit_is_refused_in_the_page_and_nothing_is_sent(person):
    alice, bob = in_room(person, "big-alice", "big-bob")
    alice_before = alice.page.locator("#messages .message").count()
    bob_before = bob.page.locator("#messages .message").count()
    alice.page.locator("#composer-input").fill("caption for the big one")
    attach(alice, "huge.bin", "application/octet-stream", b"\0" * (LIMIT + 1))

    notice = alice.page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("huge.bin")
    expect(notice).to_contain_text("10.0 MB")
    # Refused before anything was shown or sent; the caption is kept for another try.
    expect(alice.page.locator("#messages .message")).to_have_count(alice_before)
    expect(alice.page.locator("#composer-input")).to_have_value("caption for the big one")

    # A later message is the marker: frames arrive in order, so anything sent before it would be here.
    alice.send("marker after the big file")
    expect(bob.page.locator("#messages .message-body", has_text="marker after the big file")).to_be_visible()
    expect(bob.page.locator("#messages .message")).to_have_count(bob_before + 1)
    assert bob.page.locator("#messages .message", has_text="huge.bin").count() == 0
    expect(alice.page.locator("#messages .message")).to_have_count(alice_before + 1)
    expect(alice.page.locator("#messages .message.pending")).to_have_count(0)
    assert alice.console_errors == [] and bob.console_errors == []


def test_files_dropped_on_the_room_go_out_one_after_another(person):
    alice, bob = in_room(person, "drop-alice", "drop-bob")
    main = alice.page.locator(".room-main")
    files = [("one.txt", "first dropped"), ("two.txt", "second dropped")]
    transfer = alice.page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const [name, text] of files) dt.items.add(new File([text], name, { type: 'text/plain' }));
            return dt;
        }""",
        files,
    )
    main.dispatch_event("dragenter", {"dataTransfer": transfer})
    expect(main).to_have_class(re.compile(r"\bdrop-active\b"))
    alice.page.locator("#messages").dispatch_event("dragover", {"dataTransfer": transfer})
    alice.page.locator("#messages").dispatch_event("drop", {"dataTransfer": transfer})
    expect(main).not_to_have_class(re.compile(r"\bdrop-active\b"))

    links = bob.page.locator("#messages a.attachment-link")
    expect(links.filter(has_text="two.txt")).to_be_visible()
    names = [text.split(" · ")[0] for text in links.all_inner_texts()]
    assert names[-2:] == ["one.txt", "two.txt"]
    seqs = [int(s) for s in bob.page.locator("#messages .message:has(a.attachment-link)").evaluate_all(
        "nodes => nodes.map(n => n.dataset.seq)"
    )]
    assert seqs[-1] == seqs[-2] + 1
    expect(alice.page.locator("#messages .message.pending")).to_have_count(0)
    assert alice.console_errors == [] and bob.console_errors == []


def test_an_image_whose_bytes_are_not_one_fails_with_retry_and_bob_sees_nothing(person):
    alice, bob = in_room(person, "fake-alice", "fake-bob")
    bob_before = bob.page.locator("#messages .message").count()
    attach(alice, "fake.png", "image/png", b"this is not a png at all")

    own = alice.page.locator("#messages .message.own", has_text="fake.png")
    expect(own).to_have_class(FAILED)
    expect(own).not_to_have_class(PENDING)
    expect(own.locator(".message-retry")).to_be_visible()
    expect(alice.page.locator("#notice")).to_contain_text("not a image/png image")
    # Retry sends header and bytes again; the server refuses them again.
    alice.page.evaluate("document.getElementById('notice').hidden = true")
    own.locator(".message-retry").click()
    expect(alice.page.locator("#notice")).to_be_visible()
    expect(own).to_have_class(FAILED)
    expect(own.locator(".message-retry")).to_have_count(1)

    alice.send("marker after the fake image")
    expect(bob.page.locator("#messages .message-body", has_text="marker after the fake image")).to_be_visible()
    expect(bob.page.locator("#messages .message")).to_have_count(bob_before + 1)
    # The refused image is no failure of the page itself: only the server's error frame.
    assert [e for e in alice.console_errors if "files" in e] == []


def test_an_upload_cut_off_by_a_lost_connection_fails_and_retry_sends_it_with_the_same_client_id(person):
    alice, bob = person("cut-alice"), person("cut-bob")
    cut = {"pending": True, "client_ids": []}

    def relay(ws):
        upstream = ws.connect_to_server()

        def from_page(message):
            if isinstance(message, str) and '"upload"' in message:
                cut["client_ids"].append(re.search(r'"client_id":\s*"([^"]+)"', message).group(1))
            if isinstance(message, bytes) and cut["pending"]:
                # The header went through, its bytes never do: the connection drops mid-upload.
                cut["pending"] = False
                ws.close(code=4000, reason="cut")
                upstream.close()
                return
            upstream.send(message)

        ws.on_message(from_page)

    alice.login()
    alice.page.route_web_socket(re.compile(r"/ws/rooms/"), relay)
    bob.login()
    for p in (alice, bob):
        p.enter_room("lobby")
    expect(alice.page.locator("#online li[data-user-id]")).to_have_count(2)

    attach(alice, "cut.txt", "text/plain", b"sent twice, stored once\n")
    own = alice.page.locator("#messages .message.own", has_text="cut.txt")
    # Not resent by itself after the reconnect: it waits, failed, for the user.
    expect(own).to_have_class(FAILED)
    expect(own.locator(".upload-progress")).to_contain_text("connection was lost")
    alice.wait_connected()
    expect(own).to_have_class(FAILED)
    expect(own.locator(".message-retry")).to_be_visible()

    own.locator(".message-retry").click()
    link = bob.page.locator("#messages a.attachment-link", has_text="cut.txt")
    expect(link).to_have_count(1)
    expect(own).not_to_have_class(PENDING)
    expect(own).not_to_have_class(FAILED)
    expect(own.locator("a.attachment-link")).to_have_attribute("href", link.get_attribute("href"))
    assert len(cut["client_ids"]) == 2 and cut["client_ids"][0] == cut["client_ids"][1]
    assert own.get_attribute("data-client-id") == cut["client_ids"][0]
