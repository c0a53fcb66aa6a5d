// One room's message list: one node per seq in seq order, pending sends after them, a
// separator above each local day and the "Unread messages" divider, plus the bookkeeping
// that finds holes in the seq range (PROTOCOL.md section 5) and the edit window of one's
// own messages (section 10).

import {
  applyChange, buildDaySeparator, buildHole, buildMessage, buildUnreadDivider, buildUploadMessage, confirmNode,
  hasLocalAttachment, markNodeFailed, markNodeRetrying, parseTime, relabelDaySeparator, setAttachment, setMessageTime,
  setUploadProgress,
} from './render.js';

const BOTTOM_SLACK_PX = 24;
const HISTORY_MAX = 100;

function lowerBound(sorted, value) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function timeOf(iso) {
  return parseTime(iso)?.getTime() ?? null;
}

export class Timeline {
  myId = null;
  #list;
  #editWindowMs;
  #editTimer = null;
  #jumped = null; // the node a jump highlighted last
  #entries = new Map(); // seq -> { node, created, sentAt, version, id, userId, body, deleted }
  #seqs = []; // ascending
  #pending = new Map(); // client_id -> { node, body, failed, file }, in send order (file: uploads only)
  #missing = new Set(); // seqs the server no longer has (deleted), never asked for again
  #verifiedTo = null; // every seq from the first hello's oldest up to here is present or missing
  #unreadAfter = null; // the divider goes above the first message by others with a greater seq
  #divider = null;

  /** Render into `list` (an <ol class="messages">); own messages can be edited for `editWindowMs` (0: never). */
  constructor(list, { editWindowMs = 0 } = {}) {
    this.#list = list;
    this.#editWindowMs = editWindowMs;
  }

  /** Return the list element this timeline renders into. */
  get list() {
    return this.#list;
  }

  /** Return the highest seq shown, 0 when none. */
  get highestSeq() {
    return this.#seqs.at(-1) ?? 0;
  }

  /** Return the lowest seq shown, null when none. */
  get lowestSeq() {
    return this.#seqs[0] ?? null;
  }

  /** Return how many sends still wait for their ack. */
  get pendingCount() {
    return this.#pending.size;
  }

  /** Add a server message; return false for a duplicate seq. */
  add(msg) {
    if (!msg || !Number.isInteger(msg.seq)) return false;
    const known = this.#entries.get(msg.seq);
    if (known && Number.isInteger(msg.version) && msg.version > (known.version ?? 0)) {
      // An edit or a deletion of a message shown (PROTOCOL.md section 10).
      known.version = msg.version;
      if (typeof msg.body === 'string') known.body = msg.body;
      known.deleted = Boolean(msg.deleted);
      applyChange(known.node, msg);
      known.node.classList.toggle('mentions-me', this.#mentionsMe(msg));
    }
    if (known) {
      if (known.id === null && Number.isInteger(msg.id)) known.id = msg.id;
      // The ack confirmed it first; the broadcast brings the server's timestamp.
      if (!known.created && msg.created) {
        known.created = msg.created;
        known.sentAt = timeOf(msg.created) ?? known.sentAt;
        setMessageTime(known.node, parseTime(msg.created));
      }
      // An upload confirmed by its ack still shows the local file; the broadcast has the stored one.
      if (msg.attachment && hasLocalAttachment(known.node)) setAttachment(known.node, msg.attachment);
      return false;
    }
    const own = msg.user?.id === this.myId;
    const pending = own && msg.client_id ? this.#pending.get(msg.client_id) : undefined;
    let node;
    if (pending) {
      this.#pending.delete(msg.client_id);
      node = pending.node;
      confirmNode(node, msg.seq);
      setMessageTime(node, parseTime(msg.created));
      if (msg.attachment) setAttachment(node, msg.attachment);
    } else {
      node = buildMessage({
        seq: msg.seq,
        clientId: msg.client_id,
        user: msg.user,
        body: msg.body,
        created: parseTime(msg.created),
        attachment: msg.attachment,
        own,
        editable: own && this.#editableAt(timeOf(msg.created)),
      });
    }
    if (msg.edited || msg.deleted) applyChange(node, msg);
    node.classList.toggle('mentions-me', this.#mentionsMe(msg));
    if (Number.isInteger(msg.id)) node.dataset.id = String(msg.id);
    this.#place(msg.seq, {
      node,
      created: msg.created ?? null,
      sentAt: timeOf(msg.created) ?? pending?.sentAt ?? null,
      version: msg.version ?? 0,
      id: Number.isInteger(msg.id) ? msg.id : null,
      userId: msg.user?.id ?? null,
      body: typeof msg.body === 'string' ? msg.body : '',
      deleted: Boolean(msg.deleted),
    });
    return true;
  }

  /** Return the entry shown for `seq` ({ id, userId, body, deleted, ... }), or undefined. */
  entry(seq) {
    return this.#entries.get(seq);
  }

  /** Return the entry of this user's newest message when it can still be edited, or null. */
  lastOwnChangeable() {
    for (let i = this.#seqs.length - 1; i >= 0; i -= 1) {
      const entry = this.#entries.get(this.#seqs[i]);
      if (entry.userId === this.myId && !entry.deleted && entry.id !== null) {
        return this.canEdit(this.#seqs[i]) ? { seq: this.#seqs[i], ...entry } : null;
      }
    }
    return null;
  }

  /** Return whether message `seq` is this user's and still inside the edit window. */
  canEdit(seq) {
    const entry = this.#entries.get(seq);
    return Boolean(entry) && entry.userId === this.myId && !entry.deleted && this.#editableAt(entry.sentAt);
  }

  /** Return whether seq `seq` is shown or known to be gone. */
  accounts(seq) {
    return this.#accounted(seq);
  }

  /** Look for holes again from `floor` up (a jump, or the reader asking for messages not loaded). */
  verifyFrom(floor) {
    this.#verifiedTo = this.#verifiedTo === null ? floor : Math.min(this.#verifiedTo, floor);
    this.#decorate();
  }

  /** Scroll message `seq` into the middle of the list and highlight it for a moment. */
  highlight(seq) {
    const node = this.#entries.get(seq)?.node;
    if (!node) return;
    this.#jumped?.classList.remove('jump-target');
    void node.offsetWidth; // restart the fade when the same message is jumped to again
    node.classList.add('jump-target');
    this.#jumped = node;
    node.scrollIntoView({ block: 'center' });
  }

  /** Place the "Unread messages" divider above the first message by others after `lastRead`; return whether there is one. */
  markUnread(lastRead) {
    this.#unreadAfter = Number.isInteger(lastRead) ? lastRead : null;
    this.#decorate();
    if (this.#divider?.isConnected) return true;
    this.#unreadAfter = null;
    return false;
  }

  /** Take the divider away (the room is left). */
  clearUnread() {
    this.#unreadAfter = null;
    this.#divider?.remove();
  }

  /** Scroll so the divider shows near the top, or to the bottom when none is shown. */
  scrollToUnread() {
    const list = this.#list;
    if (!this.#divider?.isConnected) {
      list.scrollTop = list.scrollHeight;
      return;
    }
    list.scrollTop += this.#divider.getBoundingClientRect().top - list.getBoundingClientRect().top - 8;
  }

  /** Return whether the newest message is in view (the list is scrolled to its bottom). */
  atBottom() {
    const list = this.#list;
    return list.scrollHeight - list.scrollTop - list.clientHeight <= BOTTOM_SLACK_PX;
  }

  /** Show a message this page is sending, before the server has it. */
  addPending(clientId, body, user) {
    const node = buildMessage({ clientId, user, body, created: new Date(), own: true, pending: true,
      editable: this.#editWindowMs > 0 });
    this.#pending.set(clientId, { node, body, failed: false, file: null, sentAt: Date.now() });
    this.#list.append(node);
  }

  /** Show a file this page is uploading, with `body` as its caption, before the server has it. */
  addPendingUpload(clientId, file, body, user) {
    const node = buildUploadMessage({ clientId, user, body, file, created: new Date(), editable: this.#editWindowMs > 0 });
    this.#pending.set(clientId, { node, body, failed: false, file, sentAt: Date.now() });
    this.#list.append(node);
  }

  /** Return { file, body } of a pending, not failed, upload; null for anything else. */
  upload(clientId) {
    const pending = this.#pending.get(clientId);
    return pending?.file && !pending.failed ? { file: pending.file, body: pending.body } : null;
  }

  /** Show how much of a pending upload has gone out (0 to 1). */
  uploadProgress(clientId, share) {
    const pending = this.#pending.get(clientId);
    if (pending?.file && !pending.failed) setUploadProgress(pending.node, share);
  }

  /** Confirm a pending message from its `ack` (with the message's `id`); return false when it is not pending. */
  acknowledge(clientId, seq, id = null) {
    const pending = this.#pending.get(clientId);
    if (!pending || !Number.isInteger(seq)) return false;
    this.#pending.delete(clientId);
    confirmNode(pending.node, seq);
    if (this.#entries.has(seq)) {
      pending.node.remove();
      return false;
    }
    if (Number.isInteger(id)) pending.node.dataset.id = String(id);
    this.#place(seq, {
      node: pending.node,
      created: null,
      sentAt: pending.sentAt,
      version: 0,
      id: Number.isInteger(id) ? id : null,
      userId: this.myId,
      body: pending.body,
      deleted: false,
    });
    return true;
  }

  /** Mark a pending message as refused; return false when it is not pending. */
  fail(clientId, detail) {
    const pending = this.#pending.get(clientId);
    if (!pending) return false;
    pending.failed = true;
    markNodeFailed(pending.node, detail);
    return true;
  }

  /** Put a failed message back to pending and return { body, file } (file null for text); null when unknown. */
  retry(clientId) {
    const pending = this.#pending.get(clientId);
    if (!pending || !pending.failed) return null;
    pending.failed = false;
    markNodeRetrying(pending.node);
    return { body: pending.body, file: pending.file };
  }

  /** Yield [client_id, body] of every pending, not failed, text message in send order (uploads are never resent). */
  *unsent() {
    for (const [clientId, pending] of this.#pending) {
      if (!pending.failed && !pending.file) yield [clientId, pending.body];
    }
  }

  /** Start looking for holes above `floor` (once, at the first hello). */
  beginVerification(floor) {
    if (this.#verifiedTo === null) this.#verifiedTo = floor;
  }

  /** Return the next `history` request {before, limit} that fills a hole below `top`, or null. */
  nextGap(top) {
    if (this.#verifiedTo === null) return null;
    while (this.#verifiedTo < top && this.#accounted(this.#verifiedTo + 1)) this.#verifiedTo += 1;
    if (this.#verifiedTo >= top) return null;
    const from = this.#verifiedTo + 1;
    const next = lowerBound(this.#seqs, from);
    const end = next < this.#seqs.length ? Math.min(this.#seqs[next] - 1, top) : top;
    return { before: end + 1, limit: Math.min(HISTORY_MAX, end - from + 1) };
  }

  /** Record what a gap-filling `history` reply proved absent, so it is not asked for again. */
  resolveGap({ before, limit }, messages, hasMore) {
    if (this.#verifiedTo === null) return;
    const seqs = messages.map((m) => m?.seq).filter(Number.isInteger);
    // A short or final page means the server has nothing older than what it sent.
    const exhaustive = seqs.length < limit || !hasMore;
    const floor = Math.max(this.#verifiedTo + 1, exhaustive ? 0 : Math.min(...seqs));
    for (let seq = floor; seq < before; seq += 1) {
      if (!this.#entries.has(seq)) this.#missing.add(seq);
    }
  }

  /** Record that the seqs from `from` to `to` not shown are gone (a history answer covered them all). */
  resolveRange(from, to) {
    for (let seq = Math.max(1, from); seq <= to; seq += 1) {
      if (!this.#entries.has(seq)) this.#missing.add(seq);
    }
  }

  /** Run `fn` (which changes the list) keeping the reader's place: the bottom, or the first visible message. */
  batch(fn, { toBottom = false } = {}) {
    const list = this.#list;
    const atBottom = toBottom || this.atBottom();
    const anchor = atBottom ? null : this.#firstVisible();
    const anchorTop = anchor?.getBoundingClientRect().top;
    const result = fn();
    this.#decorate();
    if (this.#editTimer === null) this.#expireEdits();
    if (atBottom) list.scrollTop = list.scrollHeight;
    else if (anchor?.isConnected) list.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
    return result;
  }

  // PROTOCOL.md section 12: a message object lists whom it mentions; a deleted one mentions no one.
  #mentionsMe(msg) {
    return !msg.deleted && Array.isArray(msg.mentions) && msg.mentions.some((user) => user?.id === this.myId);
  }

  #accounted(seq) {
    return this.#entries.has(seq) || this.#missing.has(seq);
  }

  // The server counts the window from the message's stored time; a page's own send, until the
  // broadcast brings that time, from when it was sent.
  #editableAt(sentAt, now = Date.now()) {
    return this.#editWindowMs > 0 && (sentAt === null || now - sentAt < this.#editWindowMs);
  }

  /** Take the Edit button off own messages whose window has closed, and wake up when the next one does. */
  #expireEdits() {
    clearTimeout(this.#editTimer);
    this.#editTimer = null;
    if (this.#editWindowMs <= 0) return;
    const now = Date.now();
    let next = Infinity;
    for (const entry of this.#entries.values()) {
      const button = entry.userId === this.myId && entry.sentAt !== null ? entry.node.querySelector('.message-edit') : null;
      if (!button) continue;
      const closes = entry.sentAt + this.#editWindowMs;
      if (closes <= now) button.remove();
      else next = Math.min(next, closes);
    }
    // Timers fire late, never early; setTimeout takes at most 2^31-1 ms.
    if (next !== Infinity) this.#editTimer = setTimeout(() => this.#expireEdits(), Math.min(next - now + 50, 2 ** 31 - 1));
  }

  #place(seq, entry) {
    const index = lowerBound(this.#seqs, seq);
    this.#seqs.splice(index, 0, seq);
    this.#entries.set(seq, entry);
    this.#missing.delete(seq);
    const after = index + 1 < this.#seqs.length
      ? this.#entries.get(this.#seqs[index + 1]).node
      : this.#pending.values().next().value?.node;
    this.#list.insertBefore(entry.node, after ?? null);
  }

  // A hole below the verified range is one nothing is filling (a far jump left it): it shows, with a
  // button. One above it is being filled by the gap requests, and shows nothing.
  #markHoles(messages) {
    const kept = new Set();
    let prev = null;
    for (const node of this.#verifiedTo === null ? [] : messages) {
      if (node.dataset.seq === undefined) continue;
      const seq = Number(node.dataset.seq);
      if (prev && seq > prev.seq + 1 && prev.seq < this.#verifiedTo) {
        let count = seq - prev.seq - 1;
        for (const gone of this.#missing) if (gone > prev.seq && gone < seq) count -= 1;
        if (count > 0) {
          let hole = prev.node.nextElementSibling;
          if (!hole?.classList.contains('timeline-hole') || hole.dataset.count !== String(count)) {
            hole = buildHole(prev.seq, count);
            hole.dataset.count = String(count);
            prev.node.after(hole);
          }
          kept.add(hole);
        }
      }
      prev = { seq, node };
    }
    for (const node of this.#list.querySelectorAll(':scope > .timeline-hole')) {
      if (!kept.has(node)) node.remove();
    }
  }

  #firstVisible() {
    const top = this.#list.getBoundingClientRect().top;
    for (const node of this.#list.querySelectorAll(':scope > .message')) {
      if (node.getBoundingClientRect().bottom > top) return node;
    }
    return null;
  }

  /** Put the holes' markers, the unread divider and the day separators where the messages now are. */
  #decorate() {
    const list = this.#list;
    const messages = [...list.querySelectorAll(':scope > .message')];
    this.#markHoles(messages);
    if (this.#unreadAfter !== null) {
      const first = messages.find((node) => {
        const entry = this.#entries.get(Number(node.dataset.seq));
        return entry && Number(node.dataset.seq) > this.#unreadAfter && entry.userId !== this.myId && !entry.deleted;
      });
      this.#divider ??= buildUnreadDivider();
      if (!first) this.#divider.remove();
      else if (this.#divider.nextElementSibling !== first) first.before(this.#divider);
    }
    const now = new Date();
    const kept = new Set();
    let day = null;
    for (const node of messages) {
      if (!node.dataset.day || node.dataset.day === day) continue;
      day = node.dataset.day;
      // The separator goes above the divider when both mark the same message.
      const divider = this.#divider;
      const top = divider && node.previousElementSibling === divider ? divider : node;
      const above = top.previousElementSibling;
      if (above?.classList.contains('day-separator') && above.dataset.day === day && !kept.has(above)) {
        relabelDaySeparator(above, now);
        kept.add(above);
      } else {
        const separator = buildDaySeparator(day);
        top.before(separator);
        kept.add(separator);
      }
    }
    for (const node of list.querySelectorAll(':scope > .day-separator')) {
      if (!kept.has(node)) node.remove();
    }
  }
}
