// "New message" in the sidebar: a name field with type-ahead over GET /api/users/?q= (at most 20,
// never the signed-in user, PROTOCOL.md section 12); choosing someone opens the DM with them.

import { apiUrl, getJson } from './api.js';
import { SuggestList } from './suggest.js';

const DEBOUNCE_MS = 200;

export class DmPicker {
  #toggle;
  #box;
  #input;
  #status;
  #suggest;
  #openDm;
  #timer = null;
  #request = null; // the AbortController of the lookup under way
  #usersPath;

  /**
   * `toggle` shows and hides `box`, which holds `input`, `list` (the suggestions) and `status`;
   * `usersPath` is the API's user look-up; `openDm(username)` opens the DM (a promise, rejected
   * with a message to show).
   */
  constructor({ toggle, box, input, list, status, usersPath, openDm }) {
    this.#usersPath = usersPath;
    this.#toggle = toggle;
    this.#box = box;
    this.#input = input;
    this.#status = status;
    this.#openDm = openDm;
    this.#suggest = new SuggestList({ input, list, onPick: (item) => this.#choose(item.username) });
    toggle.setAttribute('aria-expanded', 'false');
    toggle.addEventListener('click', () => (box.hidden ? this.open() : this.close()));
    input.addEventListener('input', () => this.#lookUpSoon());
    input.addEventListener('keydown', (event) => {
      if (this.#suggest.handleKey(event)) return;
      if (event.key === 'Escape') {
        event.preventDefault();
        this.close();
        this.#toggle.focus();
      } else if (event.key === 'Enter') {
        event.preventDefault();
        this.#lookUp();
      }
    });
    input.addEventListener('blur', () => this.#suggest.close());
    input.addEventListener('focus', () => this.#lookUpSoon());
  }

  /** Show the field, focused. */
  open() {
    this.#box.hidden = false;
    this.#toggle.setAttribute('aria-expanded', 'true');
    this.#input.focus();
  }

  /** Hide and empty the field. */
  close() {
    clearTimeout(this.#timer);
    this.#request?.abort();
    this.#suggest.close();
    this.#input.value = '';
    this.#setStatus('');
    this.#box.hidden = true;
    this.#toggle.setAttribute('aria-expanded', 'false');
  }

  #lookUpSoon() {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#lookUp(), DEBOUNCE_MS);
  }

  async #lookUp() {
    clearTimeout(this.#timer);
    this.#request?.abort();
    const q = this.#input.value.trim().replace(/^@/, '');
    if (q === '') {
      this.#suggest.close();
      this.#setStatus('');
      return;
    }
    const request = new AbortController();
    this.#request = request;
    let users;
    try {
      const data = await getJson(apiUrl(this.#usersPath, { q }), { signal: request.signal });
      users = Array.isArray(data.users) ? data.users : [];
    } catch (error) {
      if (request.signal.aborted) return;
      this.#setStatus(`Could not look that up: ${error.message}`);
      return;
    }
    if (request !== this.#request || document.activeElement !== this.#input) return;
    // The server sends at most 20 (CHAT_USER_SEARCH_MAX): all of them show.
    this.#suggest.show(users.map((user) => ({ label: String(user.username), username: user.username })));
    this.#setStatus(users.length === 0 ? `No one whose name starts with “${q}”.` : '');
  }

  async #choose(username) {
    this.#setStatus(`Opening your conversation with ${username}…`);
    try {
      await this.#openDm(username);
    } catch (error) {
      this.#setStatus(error.message);
      return;
    }
    this.close();
  }

  #setStatus(text) {
    this.#status.textContent = text;
    this.#status.hidden = text === '';
  }
}
