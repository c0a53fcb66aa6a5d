// System notifications (PROTOCOL.md section 12): with the browser's permission, asked for only
// when the reader clicks "Enable notifications", a new message that mentions the reader or is
// in a DM, by someone else, shows one while the tab is hidden. Clicking it shows that room.

function supported() {
  return typeof window.Notification === 'function';
}

function count(value) {
  return Number.isInteger(value) && value > 0 ? value : 0;
}

const BODY_CHARS = 140;

export class Notifier {
  #button;
  #me;
  #onOpen;
  #seen = new Map(); // slug -> the highest seq already considered (shown or not)
  #shown = new Set(); // "slug:seq" of notifications made: one per message, from whichever socket tells first

  /** `button` asks for permission; `onOpen(slug, seq)` shows a room when its notification is clicked. */
  constructor({ button, me, onOpen }) {
    this.#button = button;
    this.#me = me;
    this.#onOpen = onOpen;
    button.addEventListener('click', () => this.#ask());
    this.#showButton();
  }

  /** Take the rooms as a snapshot (user_hello): what they hold is not news. */
  baseline(states) {
    for (const state of Array.isArray(states) ? states : []) {
      if (typeof state?.slug === 'string') this.#raise(state.slug, Math.max(state.last_seq ?? 0, state.last_message?.seq ?? 0));
    }
  }

  /** Take a room_state; `before` is what the sidebar held for the room until now (undefined for a new room). */
  fromState(state, before) {
    const message = state.last_message;
    if (!message || !Number.isInteger(message.seq)) return;
    // A room seen for the first time (a new DM, a room just joined): only what is unread in it is news.
    const seen = this.#seen.get(state.slug) ?? (Number.isInteger(state.last_read) ? state.last_read : message.seq);
    this.#raise(state.slug, message.seq);
    if (message.seq <= seen || message.seq <= (state.last_read ?? 0)) return;
    // Room states may fold several messages into one: a mention count that rose is a mention too.
    const mentioned = this.#mentionsMe(message) || count(state.mentions) > count(before?.mentions);
    if (state.dm || mentioned) this.#show(state, message, mentioned);
  }

  /** Take a live message of the room shown (`room`: { slug, name, dm }), for when it comes before its room_state. */
  fromMessage(room, message, lastRead) {
    if (!Number.isInteger(message?.seq) || message.deleted) return;
    const seen = this.#seen.get(room.slug) ?? lastRead;
    if (!Number.isInteger(seen) || message.seq <= seen) return;
    this.#raise(room.slug, message.seq);
    const mentioned = this.#mentionsMe(message);
    if (room.dm || mentioned) this.#show(room, message, mentioned);
  }

  async #ask() {
    if (!supported()) return;
    try {
      await window.Notification.requestPermission();
    } finally {
      this.#showButton();
    }
  }

  #showButton() {
    this.#button.hidden = !supported() || window.Notification.permission !== 'default';
  }

  #raise(slug, seq) {
    this.#seen.set(slug, Math.max(this.#seen.get(slug) ?? 0, seq));
  }

  #mentionsMe(message) {
    return Array.isArray(message.mentions) && message.mentions.some((user) => user?.id === this.#me.id);
  }

  #show(room, message, mentioned) {
    if (!supported() || window.Notification.permission !== 'granted') return;
    if (document.visibilityState === 'visible' || message.user?.id === this.#me.id) return;
    const key = `${room.slug}:${message.seq}`;
    if (this.#shown.has(key)) return;
    this.#shown.add(key);
    const author = String(message.user?.username ?? 'Someone');
    const title = room.dm ? author : `${author} ${mentioned ? 'mentioned you in' : 'in'} ${room.name ?? room.slug}`;
    const chars = [...(typeof message.body === 'string' ? message.body.replace(/\s+/g, ' ').trim() : '')];
    const body = chars.length > BODY_CHARS ? `${chars.slice(0, BODY_CHARS - 1).join('')}…` : chars.join('');
    const notification = new window.Notification(title, {
      body: body || (message.attachment?.name ? `📎 ${message.attachment.name}` : ''),
      tag: `chat-${room.slug}`,
    });
    notification.onclick = () => {
      window.focus();
      this.#onOpen(room.slug, message.seq);
      notification.close();
    };
  }
}
