// One room as the page holds it while the tab lives: its socket, its timeline (kept when the
// reader switches rooms, so a return shows it at once and catches up with ?after=&since=),
// history paging, jumps to a message, presence, typing, and the read cursor (PROTOCOL.md
// sections 2-6, 10, 11).

import { ChatSocket } from './socket.js';
import { EDIT_WINDOW_S } from './config.js';
import { Timeline } from './timeline.js';
import { el, renderOnline, typingText } from './render.js';
import { UploadQueue } from './uploads.js';
import { apiUrl, getJson } from './api.js';

const TYPING_SHOW_MS = 6000;
const OLDER_PAGE = 50;
const TOP_SLACK_PX = 40;
const READ_EVERY_MS = 500;
// A jump shows this many messages either side of its target.
const JUMP_CONTEXT = 25;
// A jump this close to what is loaded pages the messages in between over the socket, so the
// timeline stays whole; farther back it loads the target's neighbourhood alone, over HTTP,
// and the messages in between wait for the reader to ask for them.
const JUMP_FILL_MAX = 500;

function seqOrZero(value) {
  return Number.isInteger(value) ? value : 0;
}

function listOf(value) {
  return Array.isArray(value) ? value : [];
}

/** Return whether the reader can see this tab: visible and focused. */
export function tabIsSeen() {
  return document.visibilityState === 'visible' && document.hasFocus();
}

export class RoomView {
  slug;
  name;
  private = false;
  dm = false;
  draft = '';
  active = false;
  timeline;
  socket;
  uploads;
  #ui;
  #me;
  #hooks;
  #hadHello = false;
  #opening = false; // the next hello is the first of this visit: place the unread divider
  #knownTop = 0; // highest seq the server has told us exists
  #knownVersion = null; // the room's newest version this page has every change up to
  #historyInFlight = null; // one request at a time: replies carry no request id
  #olderWanted = false;
  #olderDone = false;
  #online = [];
  #typers = new Map(); // user id -> { username, timer }
  #lastRead = null; // the server's read cursor; null until a hello carries one
  #readSent = 0;
  #readSentAt = 0;
  #readTimer = null;
  #scroll = null; // { top, atBottom } when the room was left
  #jump = null; // the seq a jump is on its way to
  #jumpFetching = false;
  #historyPath;

  /**
   * Hold room `slug` (`name`, `private` and `dm` as far as known), with its socket at `path` and its
   * HTTP history at `historyPath`. `ui` holds the page's shared elements, `me` the signed-in user,
   * and `hooks` the page's reactions: onFinalClose(view, code), onNotice(text, kind),
   * onHello(view, frame), onOnline(view, users), onMessage(view, message) (a live one).
   */
  constructor({ slug, name, isPrivate = false, isDm = false, path, historyPath, ui, me, hooks }) {
    this.slug = slug;
    this.name = name ?? slug;
    this.private = isPrivate;
    this.dm = isDm;
    this.#historyPath = historyPath;
    this.#ui = ui;
    this.#me = me;
    this.#hooks = hooks;
    const list = el('ol', 'messages');
    list.setAttribute('role', 'log');
    list.setAttribute('aria-label', 'Messages');
    list.tabIndex = 0;
    list.addEventListener('scroll', () => {
      if (list.scrollTop <= TOP_SLACK_PX) this.requestOlder();
      this.sendReadSoon();
    }, { passive: true });
    this.timeline = new Timeline(list, { editWindowMs: EDIT_WINDOW_S * 1000 });
    this.timeline.myId = me.id;
    this.socket = new ChatSocket({
      path,
      after: () => (this.#hadHello ? this.timeline.highestSeq : null),
      since: () => (this.#hadHello ? this.#knownVersion : null),
      onFrame: (frame) => this.#handlers[frame.type]?.(frame),
      onState: (state, text) => this.#showState(state, text),
      onFinalClose: (code) => this.#finalClose(code),
    });
    this.uploads = new UploadQueue({ socket: this.socket, timeline: this.timeline });
  }

  /** Return the server's read cursor for this room (null before the first hello that carries one). */
  get lastRead() {
    return this.#lastRead;
  }

  /** Show this room in the page (in place of the list in `ui.messages`) and connect. */
  enter() {
    this.active = true;
    this.#opening = true;
    const list = this.timeline.list;
    list.id = 'messages';
    this.#ui.messages.replaceWith(list);
    this.#ui.messages = list;
    if (this.#scroll && !this.#scroll.atBottom) list.scrollTop = this.#scroll.top;
    else list.scrollTop = list.scrollHeight;
    this.#renderOnline();
    this.#showTypers();
    this.#showLoadOlder();
    this.socket.start();
  }

  /** Take this room out of the page: close its socket; its timeline stays for a return. */
  leave() {
    const list = this.timeline.list;
    this.#scroll = { top: list.scrollTop, atBottom: this.timeline.atBottom() };
    this.active = false;
    this.timeline.clearUnread();
    clearTimeout(this.#readTimer);
    this.#readTimer = null;
    this.#historyInFlight = null;
    this.#olderWanted = false;
    this.#jump = null;
    this.socket.stop();
    this.#clearTypers();
    list.removeAttribute('id');
  }

  /** Take in a room state from the user socket: the cursor may have moved in another tab. */
  updateState(state) {
    if (Number.isInteger(state.last_read) && this.#lastRead !== null) {
      this.#lastRead = Math.max(this.#lastRead, state.last_read);
    }
    if (typeof state.name === 'string') this.name = state.name;
    if (typeof state.private === 'boolean') this.private = state.private;
    if (typeof state.dm === 'boolean') this.dm = state.dm;
  }

  /** Show message `seq`, loading the messages around it first when they are not here, and highlight it. */
  jumpTo(seq) {
    this.#jump = seq;
    if (this.#hadHello) this.#continueJump();
  }

  /** Load the messages missing above seq `after` (a hole left by a far jump). */
  fillHole(after) {
    this.timeline.verifyFrom(after);
    this.#pumpHistory();
  }

  /** Tell the server the newest message is read, when it is in view and the tab is seen (at most every 500 ms). */
  sendReadSoon() {
    if (!this.active || this.#lastRead === null || !this.socket.isReady) return;
    if (!tabIsSeen() || !this.timeline.atBottom()) return;
    const seq = this.timeline.highestSeq;
    if (seq <= Math.max(this.#lastRead, this.#readSent)) return;
    const wait = this.#readSentAt + READ_EVERY_MS - Date.now();
    if (wait > 0) {
      this.#readTimer ??= setTimeout(() => {
        this.#readTimer = null;
        this.sendReadSoon();
      }, wait);
      return;
    }
    if (this.socket.send({ type: 'read', seq })) {
      this.#readSent = seq;
      this.#readSentAt = Date.now();
    }
  }

  /** Ask for the page of history above the oldest message shown. */
  requestOlder() {
    if (!this.#hadHello || this.#olderDone) return;
    this.#olderWanted = true;
    this.#pumpHistory();
  }

  #handlers = {
    hello: (frame) => this.#onHello(frame),
    message: (frame) => this.#onMessage(frame),
    ack: (frame) => this.#onAck(frame),
    presence: (frame) => this.#onPresence(frame),
    typing: (frame) => this.#onTyping(frame),
    history: (frame) => this.#onHistory(frame),
    error: (frame) => this.#onError(frame),
    // The user socket feeds the sidebar; here only the cursor matters (another tab may have moved it).
    room_state: (frame) => {
      if (frame.slug === this.slug) this.updateState(frame);
    },
  };

  #onHello(frame) {
    const me = this.#me;
    if (Number.isInteger(frame.user?.id)) {
      me.id = frame.user.id;
      me.username = frame.user.username ?? me.username;
      this.timeline.myId = me.id;
    }
    // A DM's stored name holds both users; the sidebar's (the other user) is the one to show.
    if (typeof frame.room?.name === 'string' && !this.dm) this.name = frame.room.name;
    if (typeof frame.room?.private === 'boolean') this.private = frame.room.private;
    this.#historyInFlight = null;
    const messages = listOf(frame.messages);
    this.#knownTop = Math.max(this.#knownTop, seqOrZero(frame.last_seq), ...messages.map((m) => seqOrZero(m?.seq)));
    this.timeline.batch(() => messages.forEach((m) => this.timeline.add(m)), { toBottom: !this.#hadHello });
    // A full hello brings every change up to the room's version; a truncated one does not.
    if (!frame.truncated && Number.isInteger(frame.last_version)) {
      this.#knownVersion = Math.max(this.#knownVersion ?? 0, frame.last_version);
    }
    if (!this.#hadHello) {
      const lowest = this.timeline.lowestSeq;
      this.timeline.beginVerification(lowest === null ? this.#knownTop : lowest - 1);
      this.#olderDone = lowest === null || lowest <= 1;
    }
    this.#hadHello = true;
    if (Number.isInteger(frame.last_read)) {
      this.#lastRead = Math.max(this.#lastRead ?? 0, frame.last_read);
      this.#readSent = 0;
    }
    if (this.#opening) {
      this.#opening = false;
      if (Number.isInteger(frame.last_read) && this.timeline.markUnread(frame.last_read)) this.timeline.scrollToUnread();
    }
    this.#clearTypers();
    this.#online = listOf(frame.online);
    this.#renderOnline();
    this.#hooks.onOnline(this, this.#online);
    this.socket.markReady();
    // The server is idempotent per client_id, so a resend of something it already stored is harmless.
    for (const [clientId, body] of this.timeline.unsent()) {
      this.socket.send({ type: 'message', body, client_id: clientId });
    }
    // Uploads cut off by the lost connection were marked failed; ones never sent go out now.
    this.uploads.pump();
    this.#pumpHistory();
    this.#continueJump();
    this.#fillViewport();
    this.#hooks.onHello(this, frame);
    this.sendReadSoon();
  }

  #onMessage(frame) {
    if (!Number.isInteger(frame.seq)) return;
    if (frame.user) this.#stopTyper(frame.user.id);
    if (frame.user?.id === this.#me.id && typeof frame.client_id === 'string') this.uploads.settled(frame.client_id);
    this.#knownTop = Math.max(this.#knownTop, frame.seq);
    // Live changes raise the known version only when none is missing below them (a hello sets it otherwise).
    if (Number.isInteger(frame.version) && frame.version === (this.#knownVersion ?? -1) + 1) {
      this.#knownVersion = frame.version;
    }
    const added = this.timeline.batch(() => this.timeline.add(frame));
    if (added) this.#hooks.onMessage(this, frame);
    this.#pumpHistory();
    this.sendReadSoon();
  }

  #onAck(frame) {
    if (!Number.isInteger(frame.seq)) return;
    this.#knownTop = Math.max(this.#knownTop, frame.seq);
    this.timeline.batch(() => this.timeline.acknowledge(frame.client_id, frame.seq, frame.id));
    this.uploads.settled(frame.client_id);
    this.#pumpHistory();
    this.sendReadSoon();
  }

  #onPresence(frame) {
    this.#online = listOf(frame.online);
    this.#renderOnline();
    this.#hooks.onOnline(this, this.#online);
    for (const user of listOf(frame.left)) this.#stopTyper(user?.id);
  }

  #onTyping(frame) {
    const user = frame.user;
    if (!user || user.id === this.#me.id) return;
    if (frame.active) this.#startTyper(user);
    else this.#stopTyper(user.id);
  }

  #onHistory(frame) {
    const request = this.#historyInFlight;
    this.#historyInFlight = null;
    const messages = listOf(frame.messages);
    this.timeline.batch(() => messages.forEach((m) => this.timeline.add(m)));
    if (request?.kind === 'gap') this.timeline.resolveGap(request, messages, Boolean(frame.has_more));
    if (request?.kind === 'older') {
      // The newest `limit` below `before`: a seq between them that did not come is gone.
      const seqs = messages.map((m) => m?.seq).filter(Number.isInteger);
      const exhaustive = !frame.has_more || seqs.length < request.limit;
      this.timeline.resolveRange(exhaustive ? 1 : Math.min(...seqs), request.before - 1);
      if (!frame.has_more || messages.length === 0) this.#olderDone = true;
    }
    if ((this.timeline.lowestSeq ?? 0) === 1) this.#olderDone = true;
    this.#pumpHistory();
    this.#continueJump();
    this.#fillViewport();
  }

  #onError(frame) {
    const detail = typeof frame.detail === 'string' && frame.detail ? frame.detail : String(frame.code ?? 'Error');
    if (this.active) this.#hooks.onNotice(detail, 'error');
    if (typeof frame.client_id === 'string') {
      this.timeline.fail(frame.client_id, detail);
      this.uploads.settled(frame.client_id);
    }
  }

  /** Send the next history request: holes in the seq range first, then older pages the reader asked for. */
  #pumpHistory() {
    if (!this.#historyInFlight && this.socket.isReady) {
      const gap = this.timeline.nextGap(this.#knownTop);
      let request = gap && { kind: 'gap', ...gap };
      if (!request && this.#olderWanted) {
        this.#olderWanted = false;
        const lowest = this.timeline.lowestSeq;
        if (lowest === null || lowest <= 1) this.#olderDone = true;
        else if (!this.#olderDone) request = { kind: 'older', before: lowest, limit: OLDER_PAGE };
      }
      if (request && this.socket.send({ type: 'history', before: request.before, limit: request.limit })) {
        this.#historyInFlight = request;
      }
    }
    this.#showLoadOlder();
  }

  /** Take the jump one step further: highlight its target once here, or bring the messages around it. */
  #continueJump() {
    const seq = this.#jump;
    if (seq === null || this.#jumpFetching) return;
    const timeline = this.timeline;
    if (timeline.entry(seq)) {
      this.#jump = null;
      timeline.highlight(seq);
      return;
    }
    // Gone (deleted meanwhile), or never there: nothing to show.
    if (timeline.accounts(seq) || seq > this.#knownTop) {
      this.#jump = null;
      return;
    }
    const floor = Math.max(0, seq - JUMP_CONTEXT - 1);
    const lowest = timeline.lowestSeq ?? this.#knownTop + 1;
    if (lowest - floor <= JUMP_FILL_MAX) {
      // The gap filler pages it all in, one history request at a time; each reply comes back here.
      timeline.verifyFrom(floor);
      this.#pumpHistory();
      return;
    }
    this.#jumpFetching = true;
    const url = apiUrl(this.#historyPath, { after: floor, limit: 2 * JUMP_CONTEXT + 1 });
    getJson(url).then((data) => {
      const messages = listOf(data.messages);
      // The oldest `limit` above `after`: a seq between them that did not come is gone.
      const seqs = messages.map((m) => m?.seq).filter(Number.isInteger);
      if (seqs.length > 0) timeline.resolveRange(floor + 1, Math.max(...seqs));
      timeline.batch(() => messages.forEach((m) => timeline.add(m)));
    }, (error) => {
      this.#jump = null;
      if (this.active) this.#hooks.onNotice(`Could not load that message: ${error.message}`, 'error');
    }).finally(() => {
      this.#jumpFetching = false;
      if (this.#jump !== null && !this.timeline.entry(this.#jump)) this.#jump = null; // not there after all
      this.#continueJump();
    });
  }

  // With no scrollbar the reader is already "at the top", and can never scroll there.
  #fillViewport() {
    const list = this.timeline.list;
    if (this.active && list.scrollHeight <= list.clientHeight) this.requestOlder();
  }

  #showLoadOlder() {
    if (!this.active) return;
    const box = this.#ui.loadOlder;
    const loading = this.#historyInFlight?.kind === 'older' || (this.#olderWanted && !this.#olderDone);
    const state = this.#olderDone ? 'done' : loading ? 'loading' : 'idle';
    box.dataset.state = state;
    box.querySelector('button').hidden = state !== 'idle';
    let text = '';
    if (state === 'loading') text = 'Loading older messages…';
    else if (state === 'done') {
      text = this.timeline.lowestSeq === null ? 'No messages yet.'
        : `This is the beginning of the ${this.dm ? 'conversation' : 'room'}.`;
    }
    box.querySelector('.load-older-status').textContent = text;
  }

  #renderOnline() {
    // In a DM, the one other person online is whom the reader is already writing to.
    if (this.active) renderOnline(this.#ui.online, this.#ui.onlineCount, this.#online, this.#me.id, { offerDm: !this.dm });
  }

  #startTyper(user) {
    clearTimeout(this.#typers.get(user.id)?.timer);
    const timer = setTimeout(() => this.#stopTyper(user.id), TYPING_SHOW_MS);
    this.#typers.set(user.id, { username: String(user.username), timer });
    this.#showTypers();
  }

  #stopTyper(userId) {
    const typer = this.#typers.get(userId);
    if (!typer) return;
    clearTimeout(typer.timer);
    this.#typers.delete(userId);
    this.#showTypers();
  }

  #clearTypers() {
    for (const typer of this.#typers.values()) clearTimeout(typer.timer);
    this.#typers.clear();
    this.#showTypers();
  }

  #showTypers() {
    if (!this.active) return;
    const text = typingText([...this.#typers.values()].map((typer) => typer.username));
    this.#ui.typing.textContent = text;
    this.#ui.typing.hidden = text === '';
  }

  #showState(state, text) {
    if (state !== 'open' && state !== 'connecting') this.uploads.connectionLost();
    if (!this.active) return;
    this.#ui.state.dataset.state = state;
    this.#ui.state.textContent = text;
  }

  #finalClose(code) {
    this.#clearTypers();
    if (this.active) this.#hooks.onFinalClose(this, code);
  }
}
