// Room page entry: the sidebar on the user socket, one RoomView per room visited (switched
// without a page load, kept while the tab lives), and the composer that sends, edits and deletes.

import {
  CLOSE_FORBIDDEN, CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, MAX_ATTACHMENT_BYTES, MAX_BODY_CHARS,
} from './config.js';
import { ChatSocket } from './socket.js';
import { MessageEditor } from './editing.js';
import { RoomView } from './roomview.js';
import { Sidebar } from './sidebar.js';
import { formatSize } from './render.js';
import { uploadProblem } from './uploads.js';

const TYPING_SEND_EVERY_MS = 3000;

const root = document.getElementById('chat');
const byId = (id) => document.getElementById(id);
const ui = {
  state: byId('connection-state'),
  messages: byId('messages'), // the shown room's list; RoomView.enter() swaps it
  loadOlder: byId('load-older'),
  composer: byId('composer'),
  input: byId('composer-input'),
  send: byId('composer').querySelector('button[type="submit"]'),
  editBanner: byId('edit-banner'),
  online: byId('online'),
  onlineCount: byId('online-count'),
  typing: byId('typing'),
  notice: byId('notice'),
  main: root.querySelector('.room-main'),
  title: byId('room-title'),
  privateBadge: byId('room-private'),
  attach: byId('attach-input'),
  attachButton: root.querySelector('.attach-button'),
  confirm: byId('confirm-delete'),
  sidebar: byId('sidebar'),
  sidebarState: byId('sidebar-state'),
};

const me = { id: Number(root.dataset.userId), username: root.dataset.username };
// "/rooms/{slug}/" and "/ws/rooms/{slug}/", from the view.
const roomUrl = (slug) => root.dataset.roomPath.replace('{slug}', encodeURIComponent(slug));
const roomSocketPath = (slug) => root.dataset.roomWsPath.replace('{slug}', encodeURIComponent(slug));
const [pathHead, pathTail] = root.dataset.roomPath.split('{slug}');

const views = new Map(); // slug -> RoomView, for as long as the tab lives
let active = null;
let typingSentAt = 0;
let typingSignalled = false;
let dragDepth = 0; // dragenter minus dragleave over the room's main area

const sidebar = new Sidebar({
  rooms: byId('sidebar-rooms'),
  dms: byId('sidebar-dms'),
  dmTitle: byId('sidebar-dms-title'),
  roomUrl,
});

const editor = new MessageEditor({
  ui,
  view: () => active,
  readBody: () => composerBody('Message'),
  send: sendChange,
  notice: showNotice,
});

const hooks = {
  onFinalClose: finalClose,
  onNotice: showNotice,
  onHello: (view) => {
    if (view === active) showRoomHeader();
  },
};

const userSocket = new ChatSocket({
  path: root.dataset.userWsPath,
  onFrame: (frame) => {
    if (frame.type === 'user_hello') {
      userSocket.markReady();
      sidebar.replaceAll(frame.rooms);
      for (const state of Array.isArray(frame.rooms) ? frame.rooms : []) views.get(state?.slug)?.updateState(state);
    } else if (frame.type === 'room_state') {
      sidebar.update(frame);
      views.get(frame.slug)?.updateState(frame);
    } else {
      return;
    }
    showRoomHeader();
  },
  onState: (state, text) => {
    ui.sidebar.dataset.state = state;
    ui.sidebarState.textContent = state === 'open' ? '' : text;
    ui.sidebarState.hidden = state === 'open';
  },
  onFinalClose: (code) => {
    if (code === CLOSE_NOT_AUTHENTICATED) goToLogin();
  },
});

function slugFromPath(pathname) {
  if (!pathname.startsWith(pathHead) || !pathname.endsWith(pathTail)) return null;
  const slug = pathname.slice(pathHead.length, pathname.length - pathTail.length);
  return /^[-\w]+$/.test(slug) ? slug : null;
}

/** Show room `slug` in place of the current one; `push` adds a history entry for its URL. */
function openRoom(slug, { push = false } = {}) {
  if (active?.slug === slug) return;
  if (active) {
    editor.cancel();
    stopTypingSignal();
    active.draft = ui.input.value;
    active.leave();
  }
  let view = views.get(slug);
  if (!view) {
    // Until its hello, a room is known by its sidebar state, or by the page's markup for the first one.
    const state = sidebar.get(slug);
    const first = slug === root.dataset.roomSlug;
    view = new RoomView({
      slug,
      name: state?.name ?? (first ? root.dataset.roomName : slug),
      isPrivate: state ? Boolean(state.private) : first && root.dataset.roomPrivate === 'true',
      path: roomSocketPath(slug),
      ui,
      me,
      hooks,
    });
    views.set(slug, view);
  }
  active = view;
  ui.input.value = view.draft;
  setComposerEnabled(true);
  showNotice('');
  view.enter();
  sidebar.setActive(slug);
  showRoomHeader();
  if (push) window.history.pushState({ slug }, '', roomUrl(slug));
}

function showRoomHeader() {
  if (!active) return;
  const state = sidebar.get(active.slug);
  // The sidebar's name is this user's view of the room (a DM is named after the other user).
  const name = state?.name ?? active.name;
  ui.title.textContent = name;
  ui.privateBadge.hidden = !(state?.private ?? active.private) || Boolean(state?.dm);
  const unread = sidebar.totalUnread;
  document.title = `${unread > 0 ? `(${unread}) ` : ''}${name} · Chat`;
}

function showNotice(text, kind = 'info') {
  ui.notice.textContent = text;
  ui.notice.dataset.kind = kind;
  ui.notice.hidden = text === '';
}

function setComposerEnabled(enabled) {
  ui.input.disabled = !enabled;
  ui.send.disabled = !enabled;
  ui.attach.disabled = !enabled;
}

function goToLogin() {
  showNotice('You are signed out.', 'error');
  const login = new URL(root.dataset.loginUrl || '/accounts/login/', window.location.href);
  login.searchParams.set('next', window.location.pathname + window.location.search);
  window.location.assign(login.href);
}

function finalClose(view, code) {
  editor.cancel();
  setComposerEnabled(false);
  if (code === CLOSE_NOT_AUTHENTICATED) goToLogin();
  else if (code === CLOSE_FORBIDDEN) showNotice('You are not allowed in this room.', 'error');
  else if (code === CLOSE_NOT_FOUND) showNotice('No such room.', 'error');
  else showNotice('The server closed the connection.', 'info');
}

function newClientId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // randomUUID exists only in secure contexts; a plain-http dev server still needs ids.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function stopTypingSignal() {
  if (typingSignalled) active?.socket.send({ type: 'typing', active: false });
  typingSignalled = false;
  typingSentAt = 0;
}

/** Return the body in the composer, or null (with a notice) when it is over the limit. */
function composerBody(what) {
  const body = ui.input.value.trim();
  const length = [...body].length; // code points, as the server counts
  if (length > MAX_BODY_CHARS) {
    showNotice(`${what} too long: ${length} characters, the limit is ${MAX_BODY_CHARS}.`, 'error');
    return null;
  }
  return body;
}

function sendFromComposer() {
  if (active.socket.state === 'closed') return;
  const body = composerBody('Message');
  if (!body) return;
  const clientId = newClientId();
  active.timeline.batch(() => active.timeline.addPending(clientId, body, me), { toBottom: true });
  ui.input.value = '';
  showNotice('');
  // Not ready: it stays pending and goes out with the others after the next hello.
  if (active.socket.isReady) active.socket.send({ type: 'message', body, client_id: clientId });
  stopTypingSignal();
}

/** Send an edit or a delete frame for the shown room; a change is not queued while disconnected. */
function sendChange(frame) {
  if (!active.socket.send({ ...frame, client_id: newClientId() })) {
    showNotice('Not connected: the change was not sent. Try again once connected.', 'error');
    return false;
  }
  showNotice('');
  return true;
}

/** Send `files` (a FileList or array) as attachments, one after another; the composer text is the caption. */
function attachFiles(files) {
  const list = [...files];
  if (list.length === 0 || active.socket.state === 'closed') return;
  editor.cancel();
  const problems = [];
  const accepted = [];
  for (const file of list) {
    const problem = uploadProblem(file);
    if (problem) problems.push(problem);
    else accepted.push(file);
  }
  if (accepted.length === 0) {
    showNotice(problems.join(' '), 'error');
    return;
  }
  const caption = ui.input.value.trim();
  const length = [...caption].length;
  if (length > MAX_BODY_CHARS) {
    showNotice(`Caption too long: ${length} characters, the limit is ${MAX_BODY_CHARS}. Nothing was sent.`, 'error');
    return;
  }
  const ids = accepted.map(() => newClientId());
  const { timeline, uploads } = active;
  // The caption goes with the first file only.
  timeline.batch(() => accepted.forEach((file, i) => timeline.addPendingUpload(ids[i], file, i === 0 ? caption : '', me)),
    { toBottom: true });
  if (caption !== '') {
    ui.input.value = '';
    stopTypingSignal();
  }
  showNotice(problems.join(' '), problems.length > 0 ? 'error' : 'info');
  // Not ready: they wait, pending, and go out after the next hello.
  ids.forEach((id) => uploads.enqueue(id));
}

function carriesFiles(event) {
  return Boolean(event.dataTransfer?.types?.includes('Files'));
}

function endDrag() {
  dragDepth = 0;
  ui.main.classList.remove('drop-active');
}

ui.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  if (editor.active) editor.submit();
  else sendFromComposer();
});

ui.input.addEventListener('keydown', (event) => {
  const plain = !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing;
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (editor.active) editor.submit();
    else sendFromComposer();
  } else if (event.key === 'Escape' && editor.active) {
    event.preventDefault();
    editor.cancel();
  } else if (event.key === 'ArrowUp' && plain && !editor.active && ui.input.value === '') {
    // As in Slack: Up in an empty composer edits the last message this user can still change.
    const entry = active.timeline.lastOwnChangeable();
    if (entry) {
      event.preventDefault();
      stopTypingSignal();
      editor.start(entry);
    }
  }
});

ui.input.addEventListener('input', () => {
  if (editor.active) return;
  if (ui.input.value.trim() === '') {
    stopTypingSignal();
    return;
  }
  const now = Date.now();
  if (now - typingSentAt < TYPING_SEND_EVERY_MS || !active.socket.isReady) return;
  if (active.socket.send({ type: 'typing', active: true })) {
    typingSentAt = now;
    typingSignalled = true;
  }
});

ui.main.addEventListener('click', (event) => {
  const node = event.target.closest('.message');
  if (!node) return;
  const action = event.target.closest('.message-action')?.dataset.action;
  if (action) {
    const seq = Number(node.dataset.seq);
    const entry = active.timeline.entry(seq);
    if (!entry || entry.deleted || entry.id === null) return;
    if (action === 'edit') {
      stopTypingSignal();
      editor.start({ seq, ...entry });
    } else if (action === 'delete') {
      editor.confirmDelete({ seq, ...entry });
    }
    return;
  }
  const clientId = event.target.closest('.message-retry') ? node.dataset.clientId : null;
  const pending = clientId ? active.timeline.retry(clientId) : null;
  if (!pending) return;
  // The same client_id again: if the first try was stored after all, the server only acks it.
  if (pending.file) active.uploads.enqueue(clientId);
  else if (active.socket.isReady) active.socket.send({ type: 'message', body: pending.body, client_id: clientId });
});

ui.confirm.addEventListener('click', (event) => {
  const choice = event.target.closest('button[data-choice]')?.dataset.choice;
  if (choice) ui.confirm.close(choice);
});

ui.sidebar.addEventListener('click', (event) => {
  const link = event.target.closest('a.sidebar-link');
  const slug = link?.closest('.sidebar-room')?.dataset.roomSlug;
  // A modified click opens a new tab as usual.
  if (!slug || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  openRoom(slug, { push: true });
  ui.input.focus();
});

window.addEventListener('popstate', () => {
  const slug = slugFromPath(window.location.pathname);
  if (slug) openRoom(slug);
  else window.location.reload();
});

ui.attach.addEventListener('change', () => {
  attachFiles(ui.attach.files ?? []);
  ui.attach.value = ''; // choosing the same file again fires another change
});

ui.main.addEventListener('dragenter', (event) => {
  if (!carriesFiles(event) || ui.attach.disabled) return;
  event.preventDefault();
  dragDepth += 1;
  ui.main.classList.add('drop-active');
});

ui.main.addEventListener('dragover', (event) => {
  if (!carriesFiles(event) || ui.attach.disabled) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = 'copy';
});

ui.main.addEventListener('dragleave', (event) => {
  if (!carriesFiles(event)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) ui.main.classList.remove('drop-active');
});

ui.main.addEventListener('drop', (event) => {
  if (!carriesFiles(event)) return;
  event.preventDefault();
  endDrag();
  if (!ui.attach.disabled) attachFiles(event.dataTransfer.files);
});

// A file dropped anywhere else must not make the browser navigate away to it.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (event) => {
    if (!carriesFiles(event) || event.defaultPrevented) return;
    event.preventDefault();
    if (type === 'dragover') event.dataTransfer.dropEffect = 'none';
    else endDrag();
  });
}
window.addEventListener('dragend', endDrag);

ui.loadOlder.querySelector('button').addEventListener('click', () => active.requestOlder());
window.addEventListener('online', () => {
  active?.socket.reconnectNow();
  userSocket.reconnectNow();
});
// The reader is back: what is in view now counts as read.
window.addEventListener('focus', () => active?.sendReadSoon());
document.addEventListener('visibilitychange', () => active?.sendReadSoon());

window.chatDebug = {
  get room() { return active?.slug; },
  get highestSeq() { return active?.timeline.highestSeq; },
  get lowestSeq() { return active?.timeline.lowestSeq; },
  get lastRead() { return active?.lastRead; },
  get state() { return active?.socket.state; },
  get pending() { return active?.timeline.pendingCount; },
  get userSocket() { return userSocket.state; },
};

// The limit is the server's (#chat-config), so the hint is written here, not in the template.
ui.attachButton.title = `Attach a file (up to ${formatSize(MAX_ATTACHMENT_BYTES)}; the message text becomes its caption).`
  + ' You can also drop files on the messages.';
window.history.replaceState({ slug: root.dataset.roomSlug }, '', window.location.href);
openRoom(root.dataset.roomSlug);
userSocket.start();
