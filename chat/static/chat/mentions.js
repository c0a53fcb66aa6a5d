// Mentions in the composer (PROTOCOL.md section 12): after an "@" the room's members are offered
// (GET /api/rooms/<slug>/members/, kept per room and read again when someone new shows up), and
// the one picked is written in as "@username ".

import { getJson } from './api.js';
import { SuggestList } from './suggest.js';

const MAX_SHOWN = 8;
// The server's username characters (chat/domain/mentions.py): an "@" that follows one is no mention.
const NAME_CHAR = String.raw`\p{L}\p{N}_.@+\-`;
const TYPED = new RegExp(String.raw`(?:^|[^${NAME_CHAR}])@([${NAME_CHAR}]{0,150})$`, 'u');

/** Return { start, query } of the "@name" being typed where the caret is, or null. */
export function mentionAt(text, caret) {
  const match = TYPED.exec(text.slice(0, caret));
  if (!match) return null;
  return { start: caret - match[1].length - 1, query: match[1] };
}

/** The members of each room, read once and again when someone new appears in it. */
export class MemberCache {
  #rooms = new Map(); // slug -> { users: promise of user objects, ids: Set or null until read }
  #url;

  /** Read members from `url(slug)`. */
  constructor(url) {
    this.#url = url;
  }

  /** Return a promise of the members of room `slug` (user objects). */
  get(slug) {
    let room = this.#rooms.get(slug);
    if (!room) {
      room = { ids: null, users: null };
      room.users = getJson(this.#url(slug)).then((data) => {
        const users = Array.isArray(data.members) ? data.members : [];
        room.ids = new Set(users.map((user) => user?.id));
        return users;
      }, (error) => {
        this.#rooms.delete(slug); // asked again next time
        throw error;
      });
      this.#rooms.set(slug, room);
    }
    return room.users;
  }

  /** Take who is online in room `slug`: someone the list does not hold yet means it is out of date. */
  noteOnline(slug, users) {
    const room = this.#rooms.get(slug);
    if (room?.ids && users.some((user) => user && !room.ids.has(user.id))) this.#rooms.delete(slug);
  }
}

export class MentionTypeahead {
  #input;
  #suggest;
  #members;
  #room;
  #me;
  #asked = 0; // the latest lookup: an older one that answers late is dropped

  /**
   * Offer members of room `room()` (through `members`, a MemberCache) in `list` while an "@name"
   * is typed in `input`; `me` (the signed-in user) is never offered.
   */
  constructor({ input, list, members, room, me }) {
    this.#input = input;
    this.#members = members;
    this.#room = room;
    this.#me = me;
    this.#suggest = new SuggestList({ input, list, onPick: (item) => this.#insert(item), pickKeys: ['Enter', 'Tab'] });
    input.addEventListener('input', () => this.update());
    input.addEventListener('click', () => this.update());
    input.addEventListener('keyup', (event) => {
      if (event.key === 'ArrowLeft' || event.key === 'ArrowRight' || event.key === 'Home' || event.key === 'End') this.update();
    });
    input.addEventListener('blur', () => this.close());
  }

  /** Return whether suggestions are showing. */
  get isOpen() {
    return this.#suggest.isOpen;
  }

  /** Act on a keydown in the composer; return true when it was the suggestions' key. */
  handleKey(event) {
    return this.#suggest.handleKey(event);
  }

  /** Hide the suggestions. */
  close() {
    this.#asked += 1;
    this.#suggest.close();
  }

  /** Look at the text before the caret and offer the members that fit the "@name" typed there. */
  async update() {
    const input = this.#input;
    const slug = this.#room();
    const typed = input.selectionStart === input.selectionEnd ? mentionAt(input.value, input.selectionStart) : null;
    if (!typed || !slug) {
      this.close();
      return;
    }
    const asked = ++this.#asked;
    let users;
    try {
      users = await this.#members.get(slug);
    } catch {
      users = [];
    }
    if (asked !== this.#asked || this.#room() !== slug) return;
    const query = typed.query.toLowerCase();
    const fits = users
      .filter((user) => user?.id !== this.#me.id && String(user.username).toLowerCase().startsWith(query))
      .sort((a, b) => String(a.username).localeCompare(String(b.username)))
      .slice(0, MAX_SHOWN);
    this.#suggest.show(fits.map((user) => ({ label: `@${user.username}`, username: String(user.username), start: typed.start })));
  }

  #insert(item) {
    const input = this.#input;
    const caret = input.selectionStart;
    // The "@name" may have moved since the list was shown; find it again at the caret.
    const typed = mentionAt(input.value, caret);
    const start = typed ? typed.start : item.start;
    const text = `@${item.username} `;
    input.setRangeText(text, start, caret, 'end');
    input.dispatchEvent(new Event('input', { bubbles: true }));
    input.focus();
  }
}
