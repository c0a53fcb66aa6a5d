// Room page entry: the sidebar on the user socket, one RoomView per room visited (switched
// without a page load, kept while the tab lives), the composer that sends, edits and deletes,
// and what leads to other rooms: direct messages, search, notifications.

import { API, CLOSE_FORBIDDEN, CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, MAX_ATTACHMENT_BYTES } from './config.js';
import { ChatSocket } from './socket.js';
import { Composer } from './composer.js';
import { DmPicker } from './dmpicker.js';
import { MemberCache, MentionTypeahead } from './mentions.js';
import { Notifier } from './notify.js';
import { RoomView } from './roomview.js';
import { SearchPanel } from './search.js';
import { Sidebar } from './sidebar.js';
import { formatSize } from './render.js';
import { postJson } from './api.js';

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

const sidebar = new Sidebar({
  rooms: byId('sidebar-rooms'),
  dms: byId('sidebar-dms'),
  roomUrl,
});

const members = new MemberCache(API.members);
const mentions = new MentionTypeahead({
  input: ui.input, list: byId('mention-suggestions'), members, room: () => active?.slug, me,
});
const composer = new Composer({ ui, room: () => active, me, mentions, notice: showNotice });
const { editor } = composer;

const notifier = new Notifier({ button: byId('notify-enable'), me, onOpen: (slug) => openRoom(slug, { push: true }) });

new DmPicker({
  toggle: byId('dm-new'),
  box: byId('dm-picker'),
  input: byId('dm-input'),
  list: byId('dm-suggestions'),
  status: byId('dm-status'),
  usersPath: API.users,
  openDm,
});

const search = new SearchPanel({
  ui: {
    form: byId('search-form'),
    input: byId('search-input'),
    panel: byId('search-panel'),
    title: byId('search-title'),
    list: byId('search-results'),
    status: byId('search-status'),
    more: byId('search-more'),
    close: byId('search-close'),
  },
  paths: { search: API.search, rooms: API.rooms },
  roomName: (slug) => {
    const state = sidebar.get(slug);
    if (!state) return null;
    return state.dm ? `DM with ${state.name}` : state.name;
  },
  onPick: (result) => showMessage(result.room, result.seq),
});

const hooks = {
  onFinalClose: finalClose,
  onNotice: showNotice,
  onHello: (view) => {
    if (view === active) showRoomHeader();
  },
  onOnline: (view, users) => members.noteOnline(view.slug, users),
  onMessage: (view, message) => notifier.fromMessage(
    { slug: view.slug, name: sidebar.get(view.slug)?.name ?? view.name, dm: view.dm }, message, view.lastRead),
};

const userSocket = new ChatSocket({
  path: root.dataset.userWsPath,
  onFrame: (frame) => {
    if (frame.type === 'user_hello') {
      userSocket.markReady();
      notifier.baseline(frame.rooms);
      sidebar.replaceAll(frame.rooms);
      for (const state of Array.isArray(frame.rooms) ? frame.rooms : []) views.get(state?.slug)?.updateState(state);
    } else if (frame.type === 'room_state') {
      const before = sidebar.get(frame.slug);
      sidebar.update(frame);
      if (frame.joined !== false) notifier.fromState(sidebar.get(frame.slug) ?? frame, before);
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
  search.close();
  if (active) {
    composer.reset();
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
      isDm: state ? Boolean(state.dm) : first && root.dataset.roomDm === 'true',
      path: roomSocketPath(slug),
      historyPath: API.messages(slug),
      ui,
      me,
      hooks,
    });
    views.set(slug, view);
  }
  active = view;
  ui.input.value = view.draft;
  composer.setEnabled(true);
  showNotice('');
  view.enter();
  sidebar.setActive(slug);
  showRoomHeader();
  if (push) window.history.pushState({ slug }, '', roomUrl(slug));
}

/** Show room `slug` at message `seq`, highlighted (a search result). */
function showMessage(slug, seq) {
  openRoom(slug, { push: true });
  views.get(slug).jumpTo(seq);
}

/** Open the DM with `username` (made on first use) and show it; reject with what to tell the reader. */
async function openDm(username) {
  let state;
  try {
    ({ data: state } = await postJson(API.dms, { username }));
  } catch (error) {
    throw new Error(error.status === 404 ? `No one is called ${username}.` : `Could not open the conversation: ${error.message}`);
  }
  if (typeof state?.slug !== 'string') throw new Error('Could not open the conversation.');
  sidebar.update(state); // before the user socket tells, so the room is named after the other user at once
  openRoom(state.slug, { push: true });
  ui.input.focus();
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

function goToLogin() {
  showNotice('You are signed out.', 'error');
  const login = new URL(root.dataset.loginUrl || '/accounts/login/', window.location.href);
  login.searchParams.set('next', window.location.pathname + window.location.search);
  window.location.assign(login.href);
}

function finalClose(view, code) {
  editor.cancel();
  composer.setEnabled(false);
  if (code === CLOSE_NOT_AUTHENTICATED) goToLogin();
  else if (code === CLOSE_FORBIDDEN) showNotice('You are not allowed in this room.', 'error');
  else if (code === CLOSE_NOT_FOUND) showNotice('No such room.', 'error');
  else showNotice('The server closed the connection.', 'info');
}

ui.main.addEventListener('click', (event) => {
  const hole = event.target.closest('.timeline-hole-load')?.closest('.timeline-hole');
  if (hole) {
    active.fillHole(Number(hole.dataset.after));
    return;
  }
  const node = event.target.closest('.message');
  if (!node) return;
  const action = event.target.closest('.message-action')?.dataset.action;
  if (action) {
    const seq = Number(node.dataset.seq);
    const entry = active.timeline.entry(seq);
    if (!entry || entry.deleted || entry.id === null) return;
    if (action === 'edit') {
      if (!active.timeline.canEdit(seq)) {
        node.querySelector('.message-edit')?.remove();
        showNotice('The time to edit that message has passed.', 'error');
        return;
      }
      composer.startEdit({ seq, ...entry });
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

ui.online.addEventListener('click', (event) => {
  const button = event.target.closest('button.online-dm');
  if (!button) return;
  button.disabled = true;
  openDm(button.dataset.username).catch((error) => showNotice(error.message, 'error'))
    .finally(() => { button.disabled = false; });
});

// Esc closes the search results, unless something nearer the focus took it (an edit, a list of suggestions).
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && !event.defaultPrevented && search.isOpen) {
    event.preventDefault();
    search.close();
  }
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
