// Changing one's own messages (PROTOCOL.md section 10): the composer's edit mode, entered by
// Up in an empty composer or a message's Edit button, and the confirm dialog before a delete.

const PREVIEW_CHARS = 120;

function messageNode(view, seq) {
  return view.timeline.list.querySelector(`:scope > .message[data-seq="${seq}"]`);
}

export class MessageEditor {
  #ui;
  #view;
  #readBody;
  #send;
  #notice;
  #editing = null; // { view, seq, draft } while the composer edits a message

  /**
   * Edit through the composer in `ui`, in the room `view()` returns. `readBody()` gives the
   * composer's trimmed text (null when over the limit), `send(frame)` sends an edit or delete
   * frame (false when not connected), `notice(text, kind)` tells the reader.
   */
  constructor({ ui, view, readBody, send, notice }) {
    this.#ui = ui;
    this.#view = view;
    this.#readBody = readBody;
    this.#send = send;
    this.#notice = notice;
  }

  /** Return whether the composer is editing a message. */
  get active() {
    return this.#editing !== null;
  }

  /** Put message `entry` ({ seq, id, body, ... }) of the shown room into the composer. */
  start(entry) {
    this.cancel();
    const ui = this.#ui;
    const view = this.#view();
    this.#editing = { view, seq: entry.seq, draft: ui.input.value };
    ui.input.value = entry.body;
    ui.composer.classList.add('editing');
    ui.editBanner.hidden = false;
    ui.send.textContent = 'Save';
    messageNode(view, entry.seq)?.classList.add('editing');
    ui.input.focus();
    ui.input.setSelectionRange(ui.input.value.length, ui.input.value.length);
  }

  /** Leave edit mode, putting back what the composer held before. */
  cancel() {
    const editing = this.#editing;
    if (!editing) return;
    const ui = this.#ui;
    messageNode(editing.view, editing.seq)?.classList.remove('editing');
    ui.input.value = editing.draft;
    this.#editing = null;
    ui.composer.classList.remove('editing');
    ui.editBanner.hidden = true;
    ui.send.textContent = 'Send';
  }

  /** Send the composer's text as the message's new body; an emptied message asks to be deleted. */
  submit() {
    const { seq } = this.#editing;
    const entry = this.#view().timeline.entry(seq);
    if (!entry || entry.deleted) {
      this.cancel();
      this.#notice('That message is gone.', 'error');
      return;
    }
    const body = this.#readBody();
    if (body === null) return;
    if (body === entry.body) {
      this.cancel();
      return;
    }
    if (body === '') {
      this.cancel();
      this.confirmDelete({ seq, ...entry });
      return;
    }
    if (this.#send({ type: 'edit', id: entry.id, body })) this.cancel();
  }

  /** Ask before deleting message `entry` of the shown room; send the delete when confirmed. */
  confirmDelete(entry) {
    const dialog = this.#ui.confirm;
    const view = this.#view();
    const chars = [...(entry.body || '')];
    dialog.querySelector('.confirm-preview').textContent = chars.length > PREVIEW_CHARS
      ? `${chars.slice(0, PREVIEW_CHARS - 1).join('')}…` : chars.join('');
    dialog.returnValue = '';
    dialog.addEventListener('close', () => {
      // Confirmed in the room it was asked in (a room switch underneath cancels it).
      if (dialog.returnValue === 'delete' && view === this.#view()) this.#send({ type: 'delete', id: entry.id });
      this.#ui.input.focus();
    }, { once: true });
    dialog.showModal();
  }
}
