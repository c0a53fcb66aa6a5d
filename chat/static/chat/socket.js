// A WebSocket that reconnects by itself (PROTOCOL.md sections 2, 7 and 9): a room socket or the user socket.

import {
  CLOSE_FORBIDDEN, CLOSE_NOT_AUTHENTICATED, CLOSE_NOT_FOUND, CLOSE_SERVICE_RESTART, RESTART_JITTER_MS,
} from './config.js';

const CLOSE_NORMAL = 1000; // RFC 6455
// The code this page closes a silent connection with (4000-4999 are private use); the server never sends it.
const CLOSE_SILENT = 4000;
const BACKOFF_FLOOR_MS = 500;
const BACKOFF_CAP_MS = 20000;
const PING_EVERY_MS = 25000;
const SILENCE_LIMIT_MS = 60000;

// Close codes after which reconnecting cannot help, with the state text shown.
export const FINAL_CLOSES = new Map([
  [CLOSE_NORMAL, 'Closed'],
  [CLOSE_NOT_AUTHENTICATED, 'Closed: you are signed out, going to the login page…'],
  [CLOSE_FORBIDDEN, 'Closed: you are not allowed in this room'],
  [CLOSE_NOT_FOUND, 'Closed: no such room'],
]);

/** Return the delay before reconnect attempt `attempt` (0-based): exponential, full jitter. */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_FLOOR_MS * 2 ** attempt);
  return BACKOFF_FLOOR_MS + random() * (ceiling - BACKOFF_FLOOR_MS);
}

/**
 * Return the ws(s):// URL for `path` on this host, with `?after=` when `after` is a number, and
 * `&since=` (edits and deletions after that version, PROTOCOL.md section 10) when both are.
 */
export function socketUrl(path, after, since = null, page = window.location) {
  const url = new URL(path, page.href);
  url.protocol = page.protocol === 'https:' ? 'wss:' : 'ws:';
  if (Number.isInteger(after)) url.searchParams.set('after', String(after));
  if (Number.isInteger(after) && Number.isInteger(since)) url.searchParams.set('since', String(since));
  return url.href;
}

export class ChatSocket {
  #path;
  #after;
  #since;
  #onFrame;
  #onState;
  #onFinalClose;
  #ws = null;
  #state = 'connecting';
  #text = '';
  #attempt = 0;
  #wasReady = false;
  #stopped = true;
  #pingTimer = null;
  #silenceTimer = null;
  #retryTimer = null;
  #countdownTimer = null;

  /** Keep the callbacks; nothing connects until start(). `after` and `since` give the recovery query. */
  constructor({ path, after = () => null, since = () => null, onFrame, onState, onFinalClose }) {
    this.#path = path;
    this.#after = after;
    this.#since = since;
    this.#onFrame = onFrame;
    this.#onState = onState;
    this.#onFinalClose = onFinalClose;
  }

  /** Return connecting | open | reconnecting | closed | stopped. */
  get state() {
    return this.#state;
  }

  /** Return whether the server has said hello on the current connection. */
  get isReady() {
    return this.#state === 'open' && this.#ws?.readyState === WebSocket.OPEN;
  }

  /** Open the first connection (again, after stop()). */
  start() {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#attempt = 0;
    this.#wasReady = false;
    this.#connect();
  }

  /** Close the connection on purpose (the room was left): no reconnect until start(). */
  stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#clearRetry();
    const ws = this.#detach();
    try {
      ws?.close(CLOSE_NORMAL, 'left');
    } catch {
      // Still connecting or already closing; detached either way.
    }
    this.#setState('stopped', 'Left');
  }

  /** Record a successful hello: the connection is usable and backoff starts over. */
  markReady() {
    this.#attempt = 0;
    this.#wasReady = true;
    this.#setState('open', 'Connected');
  }

  /** Skip the remaining backoff wait, e.g. when the network comes back. */
  reconnectNow() {
    if (this.#stopped || this.#retryTimer === null) return;
    this.#clearRetry();
    this.#connect();
  }

  /** Send one JSON frame; return false when there is no open connection. */
  send(frame) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Send a JSON header frame and then `data` as one binary frame, back to back on the same
   * connection in the same tick, so no other frame can come between them (PROTOCOL.md, `upload`).
   * Return false, sending nothing, when there is no open connection.
   */
  sendWithBinary(frame, data) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    ws.send(data);
    return true;
  }

  /** Return the bytes queued on the current connection and not yet handed to the network (0 without one). */
  get bufferedAmount() {
    return this.#ws?.bufferedAmount ?? 0;
  }

  #connect() {
    const first = this.#attempt === 0 && !this.#wasReady;
    this.#setState(first ? 'connecting' : 'reconnecting', first ? 'Connecting…' : 'Reconnecting…');
    let ws;
    try {
      ws = new WebSocket(socketUrl(this.#path, this.#after(), this.#since()));
    } catch {
      this.#scheduleRetry();
      return;
    }
    this.#ws = ws;
    ws.addEventListener('open', () => {
      if (ws !== this.#ws) return;
      this.#pingTimer = setInterval(() => this.send({ type: 'ping', ts: Date.now() }), PING_EVERY_MS);
    });
    ws.addEventListener('message', (event) => this.#receive(ws, event));
    ws.addEventListener('close', (event) => {
      if (ws === this.#ws) this.#closed(event.code);
    });
    this.#armSilenceTimer();
  }

  #receive(ws, event) {
    if (ws !== this.#ws) return;
    this.#armSilenceTimer();
    if (typeof event.data !== 'string') return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame && typeof frame.type === 'string') this.#onFrame(frame);
  }

  #closed(code) {
    this.#detach();
    if (this.#stopped) return;
    const text = FINAL_CLOSES.get(code);
    if (code === CLOSE_SERVICE_RESTART) {
      // A worker restarting: the others are up, so no backoff, only jitter to spread the crowd.
      this.#attempt = 0;
      this.#scheduleRetry(Math.random() * RESTART_JITTER_MS);
      return;
    }
    if (text === undefined) {
      this.#scheduleRetry();
      return;
    }
    this.#stopped = true;
    this.#setState('closed', text);
    this.#onFinalClose(code);
  }

  #armSilenceTimer() {
    clearTimeout(this.#silenceTimer);
    this.#silenceTimer = setTimeout(() => {
      // A half-open TCP connection never fires "close"; only silence gives it away.
      const ws = this.#detach();
      try {
        ws?.close(CLOSE_SILENT, 'silent');
      } catch {
        // Already closing; the socket is detached either way.
      }
      if (!this.#stopped) this.#scheduleRetry();
    }, SILENCE_LIMIT_MS);
  }

  #scheduleRetry(delay = null) {
    this.#clearRetry();
    if (delay === null) {
      delay = backoffDelay(this.#attempt);
      this.#attempt += 1;
    }
    const due = Date.now() + delay;
    const tick = () => {
      const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      this.#setState('reconnecting', `Reconnecting in ${seconds} s…`);
    };
    tick();
    this.#countdownTimer = setInterval(tick, 250);
    this.#retryTimer = setTimeout(() => {
      this.#clearRetry();
      this.#connect();
    }, delay);
  }

  #clearRetry() {
    clearTimeout(this.#retryTimer);
    clearInterval(this.#countdownTimer);
    this.#retryTimer = null;
    this.#countdownTimer = null;
  }

  #detach() {
    const ws = this.#ws;
    this.#ws = null;
    clearInterval(this.#pingTimer);
    clearTimeout(this.#silenceTimer);
    this.#pingTimer = null;
    this.#silenceTimer = null;
    return ws;
  }

  #setState(state, text) {
    if (state === this.#state && text === this.#text) return;
    this.#state = state;
    this.#text = text;
    this.#onState(state, text);
  }
}
