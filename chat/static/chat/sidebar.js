// The sidebar: the rooms and direct messages the user has joined, newest activity first,
// each with its unread and mention counts and its last message, as the user socket
// reports them (PROTOCOL.md section 11: `user_hello`, then `room_state` frames).

import { el } from './render.js';

const PREVIEW_CHARS = 80;

function activity(state) {
  const time = Date.parse(state.last_activity ?? state.last_message?.created ?? '');
  return Number.isNaN(time) ? -Infinity : time;
}

function byActivity(a, b) {
  return activity(b) - activity(a) || String(a.name).localeCompare(String(b.name));
}

function count(value) {
  return Number.isInteger(value) && value > 0 ? value : 0;
}

/** Return the one-line preview of a room's last message: "message deleted", the text, or the file. */
export function previewText(message) {
  if (!message) return '';
  if (message.deleted) return 'message deleted';
  const text = typeof message.body === 'string' ? message.body.replace(/\s+/g, ' ').trim() : '';
  const chars = [...text];
  if (chars.length > PREVIEW_CHARS) return `${chars.slice(0, PREVIEW_CHARS - 1).join('')}…`;
  if (text) return text;
  return message.attachment?.name ? `📎 ${message.attachment.name}` : '';
}

export class Sidebar {
  #rooms = new Map(); // slug -> room state
  #nodes = new Map(); // slug -> <li>
  #roomList;
  #dmList;
  #roomUrl;
  #active = null;

  /** Render into `rooms` and `dms` (two <ul>), with links from `roomUrl(slug)`. */
  constructor({ rooms, dms, roomUrl }) {
    this.#roomList = rooms;
    this.#dmList = dms;
    this.#roomUrl = roomUrl;
  }

  /** Return the state of room `slug`, or undefined when it is not in the sidebar. */
  get(slug) {
    return this.#rooms.get(slug);
  }

  /** Return the unread messages over every room in the sidebar. */
  get totalUnread() {
    let total = 0;
    for (const state of this.#rooms.values()) total += count(state.unread);
    return total;
  }

  /** Replace every room with `states` (from `user_hello`). */
  replaceAll(states) {
    this.#rooms.clear();
    for (const state of Array.isArray(states) ? states : []) {
      if (typeof state?.slug === 'string' && state.joined !== false) this.#rooms.set(state.slug, state);
    }
    this.#render();
  }

  /** Take one `room_state`: add or update the room, or drop it when `joined` is false. */
  update(state) {
    if (typeof state?.slug !== 'string') return;
    if (state.joined === false) this.#rooms.delete(state.slug);
    else this.#rooms.set(state.slug, { ...this.#rooms.get(state.slug), ...state });
    this.#render();
  }

  /** Mark room `slug` as the one shown. */
  setActive(slug) {
    this.#active = slug;
    for (const [key, node] of this.#nodes) this.#markActive(node, key === slug);
  }

  #markActive(node, active) {
    node.classList.toggle('active', active);
    const link = node.querySelector('.sidebar-link');
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }

  #render() {
    for (const [slug, node] of this.#nodes) {
      if (!this.#rooms.has(slug)) {
        node.remove();
        this.#nodes.delete(slug);
      }
    }
    const sorted = [...this.#rooms.values()].sort(byActivity);
    const rooms = [];
    const dms = [];
    for (const state of sorted) {
      let node = this.#nodes.get(state.slug);
      if (!node) {
        node = this.#build(state.slug);
        this.#nodes.set(state.slug, node);
      }
      this.#fill(node, state);
      (state.dm ? dms : rooms).push(node);
    }
    this.#roomList.replaceChildren(...rooms);
    this.#dmList.replaceChildren(...dms);
  }

  #build(slug) {
    const node = el('li', 'sidebar-room');
    node.dataset.roomSlug = slug;
    const link = el('a', 'sidebar-link');
    link.href = this.#roomUrl(slug);
    const top = el('span', 'sidebar-top');
    top.append(
      el('span', 'sidebar-name'),
      el('span', 'sidebar-private', 'private'),
      el('span', 'sidebar-mentions'),
      el('span', 'sidebar-badge'),
    );
    const last = el('span', 'sidebar-last');
    last.append(el('span', 'sidebar-last-user'), el('span', 'sidebar-last-text'));
    link.append(top, last);
    node.append(link);
    this.#markActive(node, slug === this.#active);
    return node;
  }

  #fill(node, state) {
    const unread = count(state.unread);
    const mentions = count(state.mentions);
    node.classList.toggle('has-unread', unread > 0);
    node.dataset.unread = String(unread);
    node.querySelector('.sidebar-name').textContent = String(state.name ?? state.slug);
    node.querySelector('.sidebar-private').hidden = !state.private || Boolean(state.dm);
    const badge = node.querySelector('.sidebar-badge');
    badge.textContent = String(unread);
    badge.title = `${unread} unread`;
    badge.hidden = unread === 0;
    const mention = node.querySelector('.sidebar-mentions');
    mention.textContent = `@${mentions}`;
    mention.title = `${mentions} mention${mentions === 1 ? '' : 's'}`;
    mention.hidden = mentions === 0;
    const message = state.last_message;
    const user = node.querySelector('.sidebar-last-user');
    user.textContent = message?.user?.username ? `${message.user.username}: ` : '';
    const text = node.querySelector('.sidebar-last-text');
    text.textContent = message ? previewText(message) : 'No messages yet';
    node.querySelector('.sidebar-last').classList.toggle('deleted', Boolean(message?.deleted));
  }
}
