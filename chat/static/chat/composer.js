// The composer of the room shown: sending (pending until acknowledged), typing signals, files
// from the button or dropped on the room, the edit mode (editing.js) and @-mention suggestions
// (mentions.js), with the keys that drive them.

import { MAX_BODY_CHARS } from './config.js';
import { MessageEditor } from './editing.js';
import { uploadProblem } from './uploads.js';

const TYPING_SEND_EVERY_MS = 3000;

/** Return a new client_id (a UUID v4). */
export function newClientId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // randomUUID exists only in secure contexts; a plain-http dev server still needs ids.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function carriesFiles(event) {
  return Boolean(event.dataTransfer?.types?.includes('Files'));
}

export class Composer {
  editor;
  #ui;
  #room;
  #me;
  #mentions;
  #notice;
  #typingSentAt = 0;
  #typingSignalled = false;
  #dragDepth = 0; // dragenter minus dragleave over the room's main area

  /**
   * Drive the composer in `ui` for the room `room()` returns (a RoomView), as `me`; `mentions`
   * (a MentionTypeahead) gets the keys first; `notice(text, kind)` tells the reader.
   */
  constructor({ ui, room, me, mentions, notice }) {
    this.#ui = ui;
    this.#room = room;
    this.#me = me;
    this.#mentions = mentions;
    this.#notice = notice;
    this.editor = new MessageEditor({
      ui,
      view: room,
      readBody: () => this.#body('Message'),
      send: (frame) => this.#sendChange(frame),
      notice,
    });
    this.#listen();
  }

  /** Let the reader write, or not (the room's socket is closed for good). */
  setEnabled(enabled) {
    const ui = this.#ui;
    ui.input.disabled = !enabled;
    ui.send.disabled = !enabled;
    ui.attach.disabled = !enabled;
  }

  /** Leave the edit mode and close the suggestions (the room is about to change). */
  reset() {
    this.editor.cancel();
    this.#mentions.close();
    this.stopTyping();
  }

  /** Edit message `entry` ({ seq, id, body, ... }) of the room shown. */
  startEdit(entry) {
    this.stopTyping();
    this.editor.start(entry);
  }

  /** Tell the room the reader stopped typing, if it was told they started. */
  stopTyping() {
    if (this.#typingSignalled) this.#room()?.socket.send({ type: 'typing', active: false });
    this.#typingSignalled = false;
    this.#typingSentAt = 0;
  }

  /** Return the body in the composer, or null (with a notice) when it is over the limit. */
  #body(what) {
    const body = this.#ui.input.value.trim();
    const length = [...body].length; // code points, as the server counts
    if (length > MAX_BODY_CHARS) {
      this.#notice(`${what} too long: ${length} characters, the limit is ${MAX_BODY_CHARS}.`, 'error');
      return null;
    }
    return body;
  }

  #send() {
    const room = this.#room();
    if (room.socket.state === 'closed') return;
    const body = this.#body('Message');
    if (!body) return;
    const clientId = newClientId();
    room.timeline.batch(() => room.timeline.addPending(clientId, body, this.#me), { toBottom: true });
    this.#ui.input.value = '';
    this.#notice('');
    // Not ready: it stays pending and goes out with the others after the next hello.
    if (room.socket.isReady) room.socket.send({ type: 'message', body, client_id: clientId });
    this.stopTyping();
  }

  /** Send an edit or a delete frame for the shown room; a change is not queued while disconnected. */
  #sendChange(frame) {
    if (!this.#room().socket.send({ ...frame, client_id: newClientId() })) {
      this.#notice('Not connected: the change was not sent. Try again once connected.', 'error');
      return false;
    }
    this.#notice('');
    return true;
  }

  /** Send `files` (a FileList or array) as attachments, one after another; the composer text is the caption. */
  #attachFiles(files) {
    const room = this.#room();
    const list = [...files];
    if (list.length === 0 || room.socket.state === 'closed') return;
    this.editor.cancel();
    const problems = [];
    const accepted = [];
    for (const file of list) {
      const problem = uploadProblem(file);
      if (problem) problems.push(problem);
      else accepted.push(file);
    }
    if (accepted.length === 0) {
      this.#notice(problems.join(' '), 'error');
      return;
    }
    const input = this.#ui.input;
    const caption = input.value.trim();
    const length = [...caption].length;
    if (length > MAX_BODY_CHARS) {
      this.#notice(`Caption too long: ${length} characters, the limit is ${MAX_BODY_CHARS}. Nothing was sent.`, 'error');
      return;
    }
    const ids = accepted.map(() => newClientId());
    const { timeline, uploads } = room;
    // The caption goes with the first file only.
    timeline.batch(() => accepted.forEach((file, i) => timeline.addPendingUpload(ids[i], file, i === 0 ? caption : '',
      this.#me)), { toBottom: true });
    if (caption !== '') {
      input.value = '';
      this.stopTyping();
    }
    this.#notice(problems.join(' '), problems.length > 0 ? 'error' : 'info');
    // Not ready: they wait, pending, and go out after the next hello.
    ids.forEach((id) => uploads.enqueue(id));
  }

  #onKeydown(event) {
    if (this.#mentions.handleKey(event)) return;
    const editor = this.editor;
    const input = this.#ui.input;
    const plain = !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing;
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (editor.active) editor.submit();
      else this.#send();
    } else if (event.key === 'Escape' && editor.active) {
      event.preventDefault();
      editor.cancel();
    } else if (event.key === 'ArrowUp' && plain && !editor.active && input.value === '') {
      // As in Slack: Up in an empty composer edits the last message, while it can still be edited.
      const entry = this.#room().timeline.lastOwnChangeable();
      if (entry) {
        event.preventDefault();
        this.startEdit(entry);
      }
    }
  }

  #onInput() {
    const room = this.#room();
    if (this.editor.active) return;
    if (this.#ui.input.value.trim() === '') {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    if (now - this.#typingSentAt < TYPING_SEND_EVERY_MS || !room.socket.isReady) return;
    if (room.socket.send({ type: 'typing', active: true })) {
      this.#typingSentAt = now;
      this.#typingSignalled = true;
    }
  }

  #endDrag() {
    this.#dragDepth = 0;
    this.#ui.main.classList.remove('drop-active');
  }

  #listen() {
    const ui = this.#ui;
    ui.composer.addEventListener('submit', (event) => {
      event.preventDefault();
      if (this.editor.active) this.editor.submit();
      else this.#send();
    });
    ui.input.addEventListener('keydown', (event) => this.#onKeydown(event));
    ui.input.addEventListener('input', () => this.#onInput());
    ui.attach.addEventListener('change', () => {
      this.#attachFiles(ui.attach.files ?? []);
      ui.attach.value = ''; // choosing the same file again fires another change
    });
    ui.main.addEventListener('dragenter', (event) => {
      if (!carriesFiles(event) || ui.attach.disabled) return;
      event.preventDefault();
      this.#dragDepth += 1;
      ui.main.classList.add('drop-active');
    });
    ui.main.addEventListener('dragover', (event) => {
      if (!carriesFiles(event) || ui.attach.disabled) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
    });
    ui.main.addEventListener('dragleave', (event) => {
      if (!carriesFiles(event)) return;
      this.#dragDepth = Math.max(0, this.#dragDepth - 1);
      if (this.#dragDepth === 0) ui.main.classList.remove('drop-active');
    });
    ui.main.addEventListener('drop', (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      this.#endDrag();
      if (!ui.attach.disabled) this.#attachFiles(event.dataTransfer.files);
    });
    // A file dropped anywhere else must not make the browser navigate away to it.
    for (const type of ['dragover', 'drop']) {
      window.addEventListener(type, (event) => {
        if (!carriesFiles(event) || event.defaultPrevented) return;
        event.preventDefault();
        if (type === 'dragover') event.dataTransfer.dropEffect = 'none';
        else this.#endDrag();
      });
    }
    window.addEventListener('dragend', () => this.#endDrag());
  }
}
