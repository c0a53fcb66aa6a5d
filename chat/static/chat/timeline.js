// The message list: one node per seq in seq order, pending sends after them,
// plus the bookkeeping that finds holes in the seq range (PROTOCOL.md section 5).

import {
  applyChange, buildMessage, buildUploadMessage, confirmNode, hasLocalAttachment, markNodeFailed, markNodeRetrying, parseTime, setAttachment, setMessageTime, setUploadProgress,
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

export class Timeline {
  myId = null;
  #list;
  #entries = new Map(); // seq -> { node, created }
  #seqs = []; // ascending
  #pending = new Map(); // client_id -> { node, body, failed, file }, in send order (file: uploads only)
  #missing = new Set(); // seqs the server no longer has (deleted), never asked for again
  #verifiedTo = null; // every seq from the first hello's oldest up to here is present or missing

  /** Render into `list` (the #messages element). */
  constructor(list) {
    this.#list = list;
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
      applyChange(known.node, msg);
    }
    if (known) {
      // The ack confirmed it first; the broadcast brings the server's timestamp.
      if (!known.created && msg.created) {
        known.created = msg.created;
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
      });
    }
    if (msg.edited || msg.deleted) applyChange(node, msg);
    this.#place(msg.seq, { node, created: msg.created ?? null, version: msg.version ?? 0 });
    return true;
  }

  /** Show a message this page is sending, before the server has it. */
  addPending(clientId, body, user) {
    const node = buildMessage({ clientId, user, body, created: new Date(), own: true, pending: true });
    this.#pending.set(clientId, { node, body, failed: false, file: null });
    this.#list.append(node);
  }

  /** Show a file this page is uploading, with `body` as its caption, before the server has it. */
  addPendingUpload(clientId, file, body, user) {
    const node = buildUploadMessage({ clientId, user, body, file, created: new Date() });
    this.#pending.set(clientId, { node, body, failed: false, file });
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

  /** Confirm a pending message from its `ack`; return false when it is not pending. */
  acknowledge(clientId, seq) {
    const pending = this.#pending.get(clientId);
    if (!pending || !Number.isInteger(seq)) return false;
    this.#pending.delete(clientId);
    confirmNode(pending.node, seq);
    if (this.#entries.has(seq)) {
      pending.node.remove();
      return false;
    }
    this.#place(seq, { node: pending.node, created: null });
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

  /** Run `fn` (which changes the list) keeping the reader's place: the bottom, or the first visible message. */
  batch(fn, { toBottom = false } = {}) {
    const list = this.#list;
    const atBottom = toBottom || list.scrollHeight - list.scrollTop - list.clientHeight <= BOTTOM_SLACK_PX;
    const anchor = atBottom ? null : this.#firstVisible();
    const anchorTop = anchor?.getBoundingClientRect().top;
    const result = fn();
    if (atBottom) list.scrollTop = list.scrollHeight;
    else if (anchor?.isConnected) list.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
    return result;
  }

  #accounted(seq) {
    return this.#entries.has(seq) || this.#missing.has(seq);
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

  #firstVisible() {
    const top = this.#list.getBoundingClientRect().top;
    for (const node of this.#list.children) {
      if (node.getBoundingClientRect().bottom > top) return node;
    }
    return null;
  }
}
