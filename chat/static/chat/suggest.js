// A list of suggestions under (or over) a text field, as an ARIA combobox: arrow keys move,
// Enter (and Tab, when asked) picks, Esc closes, a click picks. The field keeps the focus.

import { el } from './render.js';

export class SuggestList {
  #input;
  #list;
  #onPick;
  #pickKeys;
  #items = [];
  #index = -1;

  /**
   * Suggest for `input` in `list` (a <ul>); `onPick(item)` takes the chosen item. `pickKeys`
   * are the keys that pick the highlighted item besides a click.
   */
  constructor({ input, list, onPick, pickKeys = ['Enter'] }) {
    this.#input = input;
    this.#list = list;
    this.#onPick = onPick;
    this.#pickKeys = pickKeys;
    list.setAttribute('role', 'listbox');
    list.hidden = true;
    input.setAttribute('role', 'combobox');
    input.setAttribute('aria-autocomplete', 'list');
    input.setAttribute('aria-controls', list.id);
    input.setAttribute('aria-expanded', 'false');
    // Pressed, the field would lose the focus (and the caret) before the click lands.
    list.addEventListener('mousedown', (event) => event.preventDefault());
    list.addEventListener('click', (event) => {
      const option = event.target.closest('[role="option"]');
      if (option) this.#pick(Number(option.dataset.index));
    });
  }

  /** Return whether the list is showing. */
  get isOpen() {
    return !this.#list.hidden;
  }

  /** Show `items` ({ label, detail? } and anything onPick needs), the first one highlighted; none closes the list. */
  show(items) {
    this.#items = items;
    if (items.length === 0) {
      this.close();
      return;
    }
    this.#list.replaceChildren(...items.map((item, index) => {
      const option = el('li', 'suggest-option');
      option.id = `${this.#list.id}-${index}`;
      option.dataset.index = String(index);
      option.setAttribute('role', 'option');
      option.append(el('span', 'suggest-label', item.label));
      if (item.detail) option.append(el('span', 'suggest-detail', item.detail));
      return option;
    }));
    this.#list.hidden = false;
    this.#input.setAttribute('aria-expanded', 'true');
    this.#highlight(0);
  }

  /** Hide the list. */
  close() {
    this.#items = [];
    this.#index = -1;
    this.#list.hidden = true;
    this.#list.replaceChildren();
    this.#input.setAttribute('aria-expanded', 'false');
    this.#input.removeAttribute('aria-activedescendant');
  }

  /** Act on a keydown in the field; return true when the key was the list's (the caller then stops). */
  handleKey(event) {
    if (!this.isOpen || event.isComposing) return false;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      const step = event.key === 'ArrowDown' ? 1 : -1;
      this.#highlight((this.#index + step + this.#items.length) % this.#items.length);
    } else if (this.#pickKeys.includes(event.key) && !event.shiftKey && this.#index >= 0) {
      this.#pick(this.#index);
    } else if (event.key === 'Escape') {
      this.close();
    } else {
      return false;
    }
    event.preventDefault();
    event.stopPropagation();
    return true;
  }

  #highlight(index) {
    this.#index = index;
    for (const option of this.#list.children) {
      const on = Number(option.dataset.index) === index;
      option.setAttribute('aria-selected', String(on));
      option.classList.toggle('active', on);
      if (on) {
        this.#input.setAttribute('aria-activedescendant', option.id);
        option.scrollIntoView({ block: 'nearest' });
      }
    }
  }

  #pick(index) {
    const item = this.#items[index];
    this.close();
    if (item) this.#onPick(item);
  }
}
