// Attachments over the room socket (PROTOCOL.md section 3, `upload`): a JSON header, then
// the file as exactly one binary frame. One upload is on the wire at a time; the rest queue.

import { MAX_ATTACHMENT_BYTES } from './config.js';
import { formatSize } from './render.js';

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
const MAX_NAME_CHARS = 255;
const PROGRESS_EVERY_MS = 100;

/** Return why `file` cannot be sent (a sentence for the notice), or null when it can. */
export function uploadProblem(file, limit = MAX_ATTACHMENT_BYTES) {
  const name = file.name || 'The file';
  if (file.size === 0) return `${name} is empty; nothing was sent.`;
  if (file.size > limit) {
    return `${name} is ${formatSize(file.size)}; attachments are limited to ${formatSize(limit)}. Nothing was sent.`;
  }
  return null;
}

/** Shorten a file name to the protocol's 255 characters (code points), keeping its extension. */
export function uploadName(name) {
  const chars = [...(typeof name === 'string' && name ? name : 'file')];
  if (chars.length <= MAX_NAME_CHARS) return chars.join('');
  const dot = chars.lastIndexOf('.');
  const ext = dot > 0 && chars.length - dot <= 16 ? chars.slice(dot) : [];
  return [...chars.slice(0, MAX_NAME_CHARS - ext.length), ...ext].join('');
}

/** Build the `upload` header frame for `size` bytes of `file`. */
export function uploadHeader({ file, size, clientId, body }) {
  const header = {
    type: 'upload',
    name: uploadName(file.name),
    content_type: file.type || DEFAULT_CONTENT_TYPE,
    size,
    client_id: clientId,
  };
  if (body) header.body = body;
  return header;
}

export class UploadQueue {
  #socket;
  #timeline;
  #waiting = []; // client ids not sent yet, in order
  #flight = null; // { clientId, sent, done, total, timer } of the upload being read or on the wire

  /** Send through `socket` (a RoomSocket) the uploads that `timeline` holds as pending. */
  constructor({ socket, timeline }) {
    this.#socket = socket;
    this.#timeline = timeline;
  }

  /** Queue a pending upload of the timeline; it goes out when the ones before it are done. */
  enqueue(clientId) {
    if (this.#flight?.clientId !== clientId && !this.#waiting.includes(clientId)) this.#waiting.push(clientId);
    this.pump();
  }

  /** Start the next queued upload when none is on the wire and the socket is ready. */
  pump() {
    while (!this.#flight && this.#socket.isReady && this.#waiting.length > 0) {
      const clientId = this.#waiting.shift();
      const upload = this.#timeline.upload(clientId);
      if (upload) this.#start(clientId, upload);
    }
  }

  /** The server answered about `clientId` (ack, its message, or an error): the wire is free. */
  settled(clientId) {
    if (!this.#flight || this.#flight.clientId !== clientId) return;
    this.#finish();
    this.pump();
  }

  /**
   * The connection is gone. An upload already sent is not resent (too big to send blindly):
   * it is marked failed and the user may retry. One still being read goes back to the queue.
   */
  connectionLost() {
    const flight = this.#flight;
    if (!flight) return;
    this.#finish();
    if (flight.sent) this.#timeline.fail(flight.clientId, 'The connection was lost during the upload');
    else this.#waiting.unshift(flight.clientId);
  }

  async #start(clientId, { file, body }) {
    const flight = { clientId, sent: false, done: false, total: 0, timer: null };
    this.#flight = flight;
    let data;
    try {
      // Read it all first: header and bytes must then leave in the same tick.
      data = await file.arrayBuffer();
    } catch {
      if (this.#flight !== flight) return;
      this.#finish();
      this.#timeline.fail(clientId, 'The file could not be read');
      this.pump();
      return;
    }
    if (this.#flight !== flight) return; // the connection was lost meanwhile; it is queued again
    const header = uploadHeader({ file, size: data.byteLength, clientId, body });
    if (!this.#socket.isReady || !this.#socket.sendWithBinary(header, data)) {
      this.#flight = null;
      this.#waiting.unshift(clientId);
      return;
    }
    flight.sent = true;
    flight.total = data.byteLength;
    this.#progress(flight);
    if (!flight.done) flight.timer = setInterval(() => this.#progress(flight), PROGRESS_EVERY_MS);
  }

  #progress(flight) {
    // bufferedAmount also counts the header and any frame queued behind the file; clamp.
    const share = 1 - this.#socket.bufferedAmount / flight.total;
    this.#timeline.uploadProgress(flight.clientId, share);
    if (this.#socket.bufferedAmount === 0) {
      flight.done = true;
      clearInterval(flight.timer);
      flight.timer = null;
    }
  }

  #finish() {
    clearInterval(this.#flight?.timer);
    this.#flight = null;
  }
}
