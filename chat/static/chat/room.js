// Room page entry: wires the socket, the timeline, the composer and the side panels.

import {
  CLOSE_FORBIDDEN, CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, MAX_ATTACHMENT_BYTES, MAX_BODY_CHARS,
} from './config.js';
import { RoomSocket } from './socket.js';
import { Timeline } from './timeline.js';
import { formatSize, renderOnline, typingText } from './render.js';
import { UploadQueue, uploadProblem } from './uploads.js';

const TYPING_SEND_EVERY_MS = 3000;
const TYPING_SHOW_MS = 6000;
const OLDER_PAGE = 50;
const TOP_SLACK_PX = 40;

const root = document.getElementById('chat');
const byId = (id) => document.getElementById(id);
const ui = {
  state: byId('connection-state'),
  messages: byId('messages'),
  loadOlder: byId('load-older'),
  composer: byId('composer'),
  input: byId('composer-input'),
  online: byId('online'),
  onlineCount: byId('online-count'),
  typing: byId('typing'),
  notice: byId('notice'),
  main: root.querySelector('.room-main'),
  attach: byId('attach-input'),
  attachButton: root.querySelector('.attach-button'),
};

const me = { id: Number(root.dataset.userId), username: root.dataset.username };
const timeline = new Timeline(ui.messages);
timeline.myId = me.id;

let hadHello = false;
let knownTop = 0; // highest seq the server has told us exists
let knownVersion = null; // the room's newest version this page has every change up to
let historyInFlight = null; // one request at a time: replies carry no request id
let olderWanted = false;
let olderDone = false;
let dragDepth = 0; // dragenter minus dragleave over the room's main area
let typingSentAt = 0;
let typingSignalled = false;
const typers = new Map(); // user id -> { username, timer }

const socket = new RoomSocket({
  path: root.dataset.wsPath,
  after: () => (hadHello ? timeline.highestSeq : null),
  since: () => (hadHello ? knownVersion : null),
  onFrame: (frame) => handlers[frame.type]?.(frame),
  onState: showState,
  onFinalClose: finalClose,
});

const uploads = new UploadQueue({ socket, timeline });

const handlers = {
  hello: onHello,
  message: onMessage,
  ack: onAck,
  presence: onPresence,
  typing: onTyping,
  history: onHistory,
  error: onError,
};

function seqOrZero(value) {
  return Number.isInteger(value) ? value : 0;
}

function listOf(value) {
  return Array.isArray(value) ? value : [];
}

function onHello(frame) {
  if (Number.isInteger(frame.user?.id)) {
    me.id = frame.user.id;
    me.username = frame.user.username ?? me.username;
    timeline.myId = me.id;
  }
  historyInFlight = null;
  const messages = listOf(frame.messages);
  knownTop = Math.max(knownTop, seqOrZero(frame.last_seq), ...messages.map((m) => seqOrZero(m?.seq)));
  timeline.batch(() => messages.forEach((m) => timeline.add(m)), { toBottom: !hadHello });
  // A full hello brings every change up to the room's version; a truncated one does not.
  if (!frame.truncated && Number.isInteger(frame.last_version)) {
    knownVersion = Math.max(knownVersion ?? 0, frame.last_version);
  }
  if (!hadHello) {
    const lowest = timeline.lowestSeq;
    timeline.beginVerification(lowest === null ? knownTop : lowest - 1);
    olderDone = lowest === null || lowest <= 1;
  }
  hadHello = true;
  clearTypers();
  renderOnline(ui.online, ui.onlineCount, frame.online, me.id);
  socket.markReady();
  // The server is idempotent per client_id, so a resend of something it already stored is harmless.
  for (const [clientId, body] of timeline.unsent()) {
    socket.send({ type: 'message', body, client_id: clientId });
  }
  // Uploads cut off by the lost connection were marked failed; ones never sent go out now.
  uploads.pump();
  pumpHistory();
  fillViewport();
}

function onMessage(frame) {
  if (!Number.isInteger(frame.seq)) return;
  if (frame.user) stopTyper(frame.user.id);
  if (frame.user?.id === me.id && typeof frame.client_id === 'string') uploads.settled(frame.client_id);
  knownTop = Math.max(knownTop, frame.seq);
  timeline.batch(() => timeline.add(frame));
  pumpHistory();
}

function onAck(frame) {
  if (!Number.isInteger(frame.seq)) return;
  knownTop = Math.max(knownTop, frame.seq);
  timeline.batch(() => timeline.acknowledge(frame.client_id, frame.seq));
  uploads.settled(frame.client_id);
  pumpHistory();
}

function onPresence(frame) {
  renderOnline(ui.online, ui.onlineCount, frame.online, me.id);
  for (const user of listOf(frame.left)) stopTyper(user?.id);
}

function onTyping(frame) {
  const user = frame.user;
  if (!user || user.id === me.id) return;
  if (frame.active) startTyper(user);
  else stopTyper(user.id);
}

function onHistory(frame) {
  const request = historyInFlight;
  historyInFlight = null;
  const messages = listOf(frame.messages);
  timeline.batch(() => messages.forEach((m) => timeline.add(m)));
  if (request?.kind === 'gap') timeline.resolveGap(request, messages, Boolean(frame.has_more));
  if (request?.kind === 'older' && (!frame.has_more || messages.length === 0)) olderDone = true;
  pumpHistory();
  fillViewport();
}

function onError(frame) {
  const detail = typeof frame.detail === 'string' && frame.detail ? frame.detail : String(frame.code ?? 'Error');
  showNotice(detail, 'error');
  if (typeof frame.client_id === 'string') {
    timeline.fail(frame.client_id, detail);
    uploads.settled(frame.client_id);
  }
}

/** Send the next history request: holes in the seq range first, then older pages the reader asked for. */
function pumpHistory() {
  if (!historyInFlight && socket.isReady) {
    const gap = timeline.nextGap(knownTop);
    let request = gap && { kind: 'gap', ...gap };
    if (!request && olderWanted) {
      olderWanted = false;
      const lowest = timeline.lowestSeq;
      if (lowest === null || lowest <= 1) olderDone = true;
      else if (!olderDone) request = { kind: 'older', before: lowest, limit: OLDER_PAGE };
    }
    if (request && socket.send({ type: 'history', before: request.before, limit: request.limit })) {
      historyInFlight = request;
    }
  }
  showLoadOlder();
}

function requestOlder() {
  if (!hadHello || olderDone) return;
  olderWanted = true;
  pumpHistory();
}

// With no scrollbar the reader is already "at the top", and can never scroll there.
function fillViewport() {
  if (ui.messages.scrollHeight <= ui.messages.clientHeight) requestOlder();
}

function showLoadOlder() {
  const loading = historyInFlight?.kind === 'older' || (olderWanted && !olderDone);
  const state = olderDone ? 'done' : loading ? 'loading' : 'idle';
  ui.loadOlder.dataset.state = state;
  ui.loadOlder.querySelector('button').hidden = state !== 'idle';
  let text = '';
  if (state === 'loading') text = 'Loading older messages…';
  else if (state === 'done') text = timeline.lowestSeq === null ? 'No messages yet.' : 'This is the beginning of the room.';
  ui.loadOlder.querySelector('.load-older-status').textContent = text;
}

function startTyper(user) {
  clearTimeout(typers.get(user.id)?.timer);
  const timer = setTimeout(() => stopTyper(user.id), TYPING_SHOW_MS);
  typers.set(user.id, { username: String(user.username), timer });
  showTypers();
}

function stopTyper(userId) {
  const typer = typers.get(userId);
  if (!typer) return;
  clearTimeout(typer.timer);
  typers.delete(userId);
  showTypers();
}

function clearTypers() {
  for (const typer of typers.values()) clearTimeout(typer.timer);
  typers.clear();
  showTypers();
}

function showTypers() {
  const text = typingText([...typers.values()].map((typer) => typer.username));
  ui.typing.textContent = text;
  ui.typing.hidden = text === '';
}

function showState(state, text) {
  if (state === 'reconnecting' || state === 'closed') uploads.connectionLost();
  ui.state.dataset.state = state;
  ui.state.textContent = text;
}

function showNotice(text, kind = 'info') {
  ui.notice.textContent = text;
  ui.notice.dataset.kind = kind;
  ui.notice.hidden = text === '';
}

function finalClose(code) {
  clearTypers();
  ui.input.disabled = true;
  ui.composer.querySelector('button[type="submit"]').disabled = true;
  ui.attach.disabled = true;
  if (code === CLOSE_NOT_AUTHENTICATED) {
    showNotice('You are signed out.', 'error');
    const login = new URL(root.dataset.loginUrl || '/accounts/login/', window.location.href);
    login.searchParams.set('next', window.location.pathname + window.location.search);
    window.location.assign(login.href);
  } else if (code === CLOSE_FORBIDDEN) {
    showNotice('You are not allowed in this room.', 'error');
  } else if (code === CLOSE_NOT_FOUND) {
    showNotice('No such room.', 'error');
  } else {
    showNotice('The server closed the connection.', 'info');
  }
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
  if (typingSignalled) socket.send({ type: 'typing', active: false });
  typingSignalled = false;
  typingSentAt = 0;
}

function sendFromComposer() {
  if (socket.state === 'closed') return;
  const body = ui.input.value.trim();
  if (body === '') return;
  const length = [...body].length; // code points, as the server counts
  if (length > MAX_BODY_CHARS) {
    showNotice(`Message too long: ${length} characters, the limit is ${MAX_BODY_CHARS}.`, 'error');
    return;
  }
  const clientId = newClientId();
  timeline.batch(() => timeline.addPending(clientId, body, me), { toBottom: true });
  ui.input.value = '';
  showNotice('');
  // Not ready: it stays pending and goes out with the others after the next hello.
  if (socket.isReady) socket.send({ type: 'message', body, client_id: clientId });
  stopTypingSignal();
}

/** Send `files` (a FileList or array) as attachments, one after another; the composer text is the caption. */
function attachFiles(files) {
  const list = [...files];
  if (list.length === 0 || socket.state === 'closed') return;
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
  sendFromComposer();
});

ui.input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendFromComposer();
  }
});

ui.input.addEventListener('input', () => {
  if (ui.input.value.trim() === '') {
    stopTypingSignal();
    return;
  }
  const now = Date.now();
  if (now - typingSentAt < TYPING_SEND_EVERY_MS || !socket.isReady) return;
  if (socket.send({ type: 'typing', active: true })) {
    typingSentAt = now;
    typingSignalled = true;
  }
});

ui.messages.addEventListener('scroll', () => {
  if (ui.messages.scrollTop <= TOP_SLACK_PX) requestOlder();
}, { passive: true });

ui.messages.addEventListener('click', (event) => {
  const button = event.target.closest('.message-retry');
  const clientId = button?.closest('.message')?.dataset.clientId;
  const pending = clientId ? timeline.retry(clientId) : null;
  if (!pending) return;
  // The same client_id again: if the first try was stored after all, the server only acks it.
  if (pending.file) uploads.enqueue(clientId);
  else if (socket.isReady) socket.send({ type: 'message', body: pending.body, client_id: clientId });
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

ui.loadOlder.querySelector('button').addEventListener('click', requestOlder);
window.addEventListener('online', () => socket.reconnectNow());

window.chatDebug = {
  get highestSeq() { return timeline.highestSeq; },
  get lowestSeq() { return timeline.lowestSeq; },
  get state() { return socket.state; },
  get pending() { return timeline.pendingCount; },
};

// The limit is the server's (#chat-config), so the hint is written here, not in the template.
ui.attachButton.title = `Attach a file (up to ${formatSize(MAX_ATTACHMENT_BYTES)}; the message text becomes its caption).`
  + ' You can also drop files on the messages.';
showLoadOlder();
socket.start();
