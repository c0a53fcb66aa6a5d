// Message search (PROTOCOL.md section 12): GET /api/search/?q= over the rooms the reader may read,
// newest first, 20 a page, paged back with before=<id of the last result>. Results show in a
// panel over the room; clicking one shows its room at that message.

import { apiUrl, getJson } from './api.js';
import { el, parseTime } from './render.js';

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

/** Return the words of a query to mark in results: no quotes, no excluded "-word", no "or". */
export function queryTerms(q) {
  return q.replace(/"/g, ' ').split(/\s+/)
    .filter((word) => word !== '' && !word.startsWith('-') && word.toLowerCase() !== 'or');
}

/** Put `text` in `parent` as text nodes, with each occurrence of `terms` in a <mark>. */
export function setMarkedText(parent, text, terms) {
  parent.replaceChildren();
  if (terms.length === 0) {
    parent.textContent = text;
    return;
  }
  const escaped = [...terms].sort((a, b) => b.length - a.length).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  let from = 0;
  for (const match of text.matchAll(new RegExp(escaped.join('|'), 'giu'))) {
    if (match.index > from) parent.append(document.createTextNode(text.slice(from, match.index)));
    parent.append(el('mark', 'search-mark', match[0]));
    from = match.index + match[0].length;
  }
  if (from < text.length) parent.append(document.createTextNode(text.slice(from)));
}

export class SearchPanel {
  #ui;
  #roomName;
  #onPick;
  #query = '';
  #results = [];
  #hasMore = false;
  #request = null;
  #names = null; // slug -> name of every room the reader can see, read when a result's room is unknown
  #paths;

  /**
   * `ui`: { form, input, panel, title, list, status, more, close }; `paths`: { search, rooms }, the API's.
   * `roomName(slug)` names a room the page knows (null otherwise); `onPick(result)` shows a result's
   * message in its room.
   */
  constructor({ ui, paths, roomName, onPick }) {
    this.#ui = ui;
    this.#paths = paths;
    this.#roomName = roomName;
    this.#onPick = onPick;
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.search(ui.input.value);
    });
    ui.more.addEventListener('click', () => this.#load());
    ui.close.addEventListener('click', () => this.close());
    ui.list.addEventListener('click', (event) => {
      const hit = event.target.closest('.search-hit');
      const result = hit && this.#results[Number(hit.dataset.index)];
      if (!result) return;
      this.close();
      this.#onPick(result);
    });
  }

  /** Return whether the results panel is showing. */
  get isOpen() {
    return !this.#ui.panel.hidden;
  }

  /** Search for `q` and show the first page of results. */
  search(q) {
    const query = q.trim();
    if (query === '') return;
    this.#request?.abort();
    this.#query = query;
    this.#results = [];
    this.#hasMore = false;
    this.#ui.list.replaceChildren();
    this.#ui.title.textContent = `Results for “${query}”`;
    this.#ui.panel.hidden = false;
    this.#load();
  }

  /** Hide the panel (the results stay until the next search). */
  close() {
    this.#request?.abort();
    this.#ui.panel.hidden = true;
  }

  async #load() {
    const ui = this.#ui;
    const request = new AbortController();
    this.#request = request;
    const before = this.#results.at(-1)?.id;
    ui.more.hidden = true;
    this.#setStatus('Searching…');
    let data;
    try {
      data = await getJson(apiUrl(this.#paths.search, { q: this.#query, before }), { signal: request.signal });
      const results = Array.isArray(data.results) ? data.results : [];
      if (results.some((r) => this.#roomName(r.room) === null) && this.#names === null) await this.#readNames(request);
    } catch (error) {
      if (!request.signal.aborted) this.#setStatus(`Search failed: ${error.message}`);
      if (!request.signal.aborted && this.#hasMore) ui.more.hidden = false;
      return;
    }
    if (request !== this.#request) return;
    const terms = queryTerms(this.#query);
    const fresh = (Array.isArray(data.results) ? data.results : []).filter((r) => Number.isInteger(r?.seq));
    const first = this.#results.length;
    this.#results.push(...fresh);
    ui.list.append(...fresh.map((result, i) => this.#build(result, first + i, terms)));
    this.#hasMore = Boolean(data.has_more) && fresh.length > 0;
    ui.more.hidden = !this.#hasMore;
    const n = this.#results.length;
    this.#setStatus(n === 0 ? `No messages found for “${this.#query}”.`
      : `${n}${this.#hasMore ? '+' : ''} message${n === 1 ? '' : 's'} found, newest first.`);
  }

  async #readNames(request) {
    const data = await getJson(this.#paths.rooms, { signal: request.signal });
    this.#names = new Map((Array.isArray(data.rooms) ? data.rooms : []).map((room) => [room.slug, room.name]));
  }

  #build(result, index, terms) {
    const item = el('li', 'search-result');
    const hit = el('button', 'search-hit');
    hit.type = 'button';
    hit.dataset.index = String(index);
    hit.dataset.room = String(result.room);
    hit.dataset.seq = String(result.seq);
    const head = el('span', 'search-head');
    const room = this.#roomName(result.room) ?? this.#names?.get(result.room) ?? result.room;
    head.append(el('span', 'search-room', String(room)), el('span', 'search-author', String(result.user?.username ?? 'unknown')));
    const date = parseTime(result.created);
    if (date) {
      const time = el('time', 'search-time', WHEN.format(date));
      time.dateTime = date.toISOString();
      time.title = FULL.format(date);
      head.append(time);
    }
    const text = el('span', 'search-text');
    const body = typeof result.body === 'string' && result.body !== '' ? result.body : (result.attachment?.name ?? '');
    setMarkedText(text, body, terms);
    hit.append(head, text);
    item.append(hit);
    return item;
  }

  #setStatus(text) {
    this.#ui.status.textContent = text;
  }
}
