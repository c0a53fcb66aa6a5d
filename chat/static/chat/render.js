// DOM builders for the room page. Every user-supplied string goes through
// textContent or an attribute setter, never through HTML parsing.

import { dayKey, dayLabel } from './days.js';
import { setLinkedText } from './links.js';

const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const FULL_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

/** Create an element with an optional class and text content. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Parse a protocol timestamp into a Date, or return null. */
export function parseTime(iso) {
  if (typeof iso !== 'string') return null;
  // Python emits microseconds; Date parsing is only specified for milliseconds.
  const date = new Date(iso.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(date.getTime()) ? null : date;
}

/** Format a Date as the local clock time; the day separator above the message tells the day. */
export function formatTime(date) {
  return TIME_FORMAT.format(date);
}

/** Format a byte count for people. */
export function formatSize(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  const units = ['B', 'KB', 'MB', 'GB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Return `url` as an absolute URL when it is a same-origin path ("/rooms/..."), null otherwise. */
export function sameOriginUrl(url, page = window.location) {
  // "//host/..." and "/\\host/..." are protocol-relative, so only a single leading slash counts.
  if (typeof url !== 'string' || !/^\/(?![/\\])/.test(url)) return null;
  try {
    const parsed = new URL(url, page.origin);
    return parsed.origin === page.origin ? parsed.href : null;
  } catch {
    return null;
  }
}

/** Show `date` (or nothing, when null) in a message's time element. */
export function setMessageTime(node, date) {
  const time = node.querySelector('.message-time');
  if (!time) return;
  if (!date) {
    time.textContent = '';
    time.removeAttribute('datetime');
    time.removeAttribute('title');
    return;
  }
  node.dataset.day = dayKey(date);
  time.dateTime = date.toISOString();
  time.textContent = formatTime(date);
  time.title = FULL_FORMAT.format(date);
}

/** Return "name · size" for a file, or the name alone when the size is unknown. */
export function fileLabel(name, size) {
  const human = formatSize(size);
  return human ? `${name} · ${human}` : name;
}

function isImage(contentType) {
  return typeof contentType === 'string' && contentType.startsWith('image/');
}

/** Build the attachment box of a stored message; null when its URL is not a same-origin path. */
export function buildAttachment(attachment) {
  const href = sameOriginUrl(attachment?.url);
  if (!href) return null;
  const name = typeof attachment.name === 'string' && attachment.name ? attachment.name : 'attachment';
  const box = el('div', 'message-attachment');
  const link = el('a');
  link.href = href;
  if (isImage(attachment.content_type)) {
    link.className = 'attachment-image';
    link.target = '_blank';
    link.rel = 'noopener';
    link.title = fileLabel(name, attachment.size);
    const img = el('img', 'attachment-thumb');
    img.loading = 'lazy';
    img.alt = name;
    img.src = href;
    link.append(img);
  } else {
    link.className = 'attachment-link';
    link.download = name;
    link.textContent = fileLabel(name, attachment.size);
  }
  box.append(link);
  return box;
}

/** Put a stored message's attachment in `node`, replacing the local preview of an upload. */
export function setAttachment(node, attachment) {
  const box = buildAttachment(attachment);
  if (!box) return false;
  const old = node.querySelector('.message-attachment');
  if (old) {
    releasePreview(old);
    old.replaceWith(box);
  } else {
    node.append(box);
  }
  return true;
}

/** Return whether `node` still shows the local stand-in of an upload rather than the stored file. */
export function hasLocalAttachment(node) {
  return node.querySelector('.message-attachment.attachment-local') !== null;
}

function releasePreview(box) {
  for (const img of box.querySelectorAll('img[src^="blob:"]')) URL.revokeObjectURL(img.src);
}

/** Build the pending node of a file this page is uploading: name, size, a preview for images, progress. */
export function buildUploadMessage({ clientId, user, body, file, created, editable = true }) {
  const node = buildMessage({ clientId, user, body, created, own: true, pending: true, editable });
  node.classList.add('uploading');
  const name = file.name || 'file';
  const box = el('div', 'message-attachment attachment-local');
  if (isImage(file.type) && typeof URL.createObjectURL === 'function') {
    const img = el('img', 'attachment-preview');
    img.alt = name;
    img.src = URL.createObjectURL(file);
    box.append(img);
  }
  box.append(el('span', 'attachment-name', fileLabel(name, file.size)));
  const progress = el('div', 'upload-progress');
  const bar = el('progress', 'upload-bar');
  bar.max = 100;
  bar.value = 0;
  progress.append(bar, el('span', 'upload-status', 'Waiting to upload…'));
  node.append(box, progress);
  return node;
}

/** Show how much of an upload has gone out: `share` from 0 to 1. */
export function setUploadProgress(node, share) {
  const percent = Math.round(Math.min(1, Math.max(0, share)) * 100);
  const bar = node.querySelector('.upload-bar');
  if (bar) bar.value = percent;
  const status = node.querySelector('.upload-status');
  if (status) status.textContent = `Uploading ${percent}%`;
}

function setUploadStatus(node, text) {
  const status = node.querySelector('.upload-status');
  if (status) status.textContent = text;
}

/**
 * Build the DOM node of one message (confirmed when `seq` is given, pending otherwise); an own
 * message gets Delete, and Edit too when `editable`.
 */
export function buildMessage({ seq, clientId, user, body, created, attachment, own, pending, editable = true }) {
  const node = el('li', 'message');
  if (own) node.classList.add('own');
  if (pending) node.classList.add('pending');
  if (Number.isInteger(seq)) node.dataset.seq = String(seq);
  if (clientId) node.dataset.clientId = clientId;
  if (user && user.id != null) node.dataset.userId = String(user.id);
  const text = el('div', 'message-body');
  setLinkedText(text, typeof body === 'string' ? body : '');
  node.append(el('span', 'message-user', user?.username ?? 'unknown'), el('time', 'message-time'), text);
  if (own) node.append(buildActions(editable));
  setMessageTime(node, created);
  if (attachment) {
    const box = buildAttachment(attachment);
    if (box) node.append(box);
  }
  return node;
}

// Edit (while the server's edit window is open) and Delete on the page's own messages; CSS shows
// them on hover and keyboard focus.
function buildActions(editable) {
  const actions = el('div', 'message-actions');
  for (const [kind, label] of [['edit', 'Edit'], ['delete', 'Delete']]) {
    if (kind === 'edit' && !editable) continue;
    const button = el('button', `message-action message-${kind}`, label);
    button.type = 'button';
    button.dataset.action = kind;
    actions.append(button);
  }
  return actions;
}

/** Show an edit or a deletion on a message's node: the new body and "(edited)", or "message deleted". */
export function applyChange(node, msg) {
  const body = node.querySelector('.message-body');
  if (msg.deleted) {
    node.classList.add('deleted');
    if (body) body.textContent = 'message deleted';
    node.querySelector('.message-attachment')?.remove();
    node.querySelector('.message-edited')?.remove();
    node.querySelector('.message-actions')?.remove();
    return;
  }
  if (body && typeof msg.body === 'string') setLinkedText(body, msg.body);
  if (msg.edited && !node.querySelector('.message-edited')) {
    const mark = el('span', 'message-edited', '(edited)');
    node.querySelector('.message-time')?.after(mark);
  }
}

/** Build the marker of messages between two shown ones that are not loaded, with a button that loads them. */
export function buildHole(after, count) {
  const node = el('li', 'timeline-hole');
  node.dataset.after = String(after);
  const button = el('button', 'link-button timeline-hole-load', `Load ${count} message${count === 1 ? '' : 's'} not shown here`);
  button.type = 'button';
  node.append(button);
  return node;
}

/** Build the separator shown above the first message of the local day `key`. */
export function buildDaySeparator(key) {
  const node = el('li', 'day-separator');
  node.dataset.day = key;
  node.append(el('span', 'day-label', dayLabel(key)));
  return node;
}

/** Relabel a day separator ("Today" turns into "Yesterday" at midnight). */
export function relabelDaySeparator(node, now = new Date()) {
  const label = node.querySelector('.day-label');
  const text = dayLabel(node.dataset.day, now);
  if (label && label.textContent !== text) label.textContent = text;
}

/** Build the "Unread messages" divider. */
export function buildUnreadDivider() {
  const node = el('li', 'unread-divider');
  node.append(el('span', 'unread-label', 'Unread messages'));
  return node;
}

/** Turn a pending or failed node into a confirmed one with `seq`. */
export function confirmNode(node, seq) {
  node.dataset.seq = String(seq);
  node.classList.remove('pending', 'failed', 'uploading');
  node.removeAttribute('title');
  node.querySelector('.message-retry')?.remove();
  node.querySelector('.upload-progress')?.remove();
}

/** Mark a pending node as refused by the server, with a retry button. */
export function markNodeFailed(node, detail) {
  node.classList.remove('pending', 'uploading');
  node.classList.add('failed');
  node.title = detail || 'Not sent';
  setUploadStatus(node, detail ? `Not uploaded: ${detail}` : 'Not uploaded');
  if (!node.querySelector('.message-retry')) {
    const retry = el('button', 'message-retry', 'Retry');
    retry.type = 'button';
    node.append(retry);
  }
}

/** Put a failed node back to pending. */
export function markNodeRetrying(node) {
  node.classList.remove('failed');
  node.classList.add('pending');
  node.removeAttribute('title');
  node.querySelector('.message-retry')?.remove();
  if (node.querySelector('.upload-progress')) {
    node.classList.add('uploading');
    setUploadProgress(node, 0);
    setUploadStatus(node, 'Waiting to upload…');
  }
}

/**
 * Replace the online list with `users`, sorted by name, and update the count; with `offerDm`,
 * everyone but the reader gets a "Message" button (a direct message).
 */
export function renderOnline(list, count, users, myId, { offerDm = true } = {}) {
  const byId = new Map();
  for (const user of Array.isArray(users) ? users : []) {
    if (user && user.id != null) byId.set(user.id, user);
  }
  const sorted = [...byId.values()].sort((a, b) => String(a.username).localeCompare(String(b.username)));
  list.replaceChildren(...sorted.map((user) => {
    const name = String(user.username);
    const item = el('li', user.id === myId ? 'online-user me' : 'online-user');
    item.dataset.userId = String(user.id);
    item.append(el('span', 'online-name', name));
    if (offerDm && user.id !== myId) {
      const button = el('button', 'online-dm', 'Message');
      button.type = 'button';
      button.dataset.username = name;
      button.title = `Send ${name} a direct message`;
      button.setAttribute('aria-label', `Message ${name}`);
      item.append(button);
    }
    return item;
  }));
  count.textContent = String(sorted.length);
}

/** Return the typing sentence for `names` ("alice and bob are typing…"), or ''. */
export function typingText(names) {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length > 3) {
    const others = names.length - 3;
    return `${names.slice(0, 3).join(', ')} and ${others} other${others === 1 ? '' : 's'} are typing…`;
  }
  return `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
}
