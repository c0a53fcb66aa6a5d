// Web addresses in message text become links: http and https only, built as DOM nodes.
// Everything else (javascript:, data:, a bare "www.") stays plain text.

/** The rel of every link to another site: no window.opener, no Referer, no ranking credit. */
export const LINK_REL = 'noopener noreferrer nofollow';

// A candidate starts at "http://" or "https://" on a word boundary and runs to the next blank,
// quote or angle bracket; safeHref() decides whether it is a link.
const CANDIDATE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = '.,;:!?*_~';
const CLOSERS = { ')': '(', ']': '[', '}': '{' };

function count(text, char) {
  return text.split(char).length - 1;
}

/** Drop the punctuation that ends a sentence, not the address: "see https://x.org/a." */
export function trimCandidate(text) {
  let end = text.length;
  while (end > 0) {
    const last = text[end - 1];
    const opener = CLOSERS[last];
    const head = text.slice(0, end);
    // A closing bracket stays when it closes one of the address's own (Wikipedia's "_(disambiguation)").
    if (opener ? count(head, opener) >= count(head, last) : !TRAILING.includes(last)) break;
    end -= 1;
  }
  return text.slice(0, end);
}

/** Return the absolute href of `text` when it is an http(s) URL with a host, null otherwise. */
export function safeHref(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  return url.hostname ? url.href : null;
}

/** Build the link for `href`, showing `text`: a new tab, with LINK_REL. */
export function buildLink(href, text) {
  const link = document.createElement('a');
  link.className = 'message-link';
  link.textContent = text;
  link.href = href;
  link.target = '_blank';
  link.rel = LINK_REL;
  return link;
}

/** Replace the children of `parent` with `text`, its http(s) addresses as links and the rest as text nodes. */
export function setLinkedText(parent, text) {
  const parts = [];
  let from = 0;
  for (const match of text.matchAll(CANDIDATE)) {
    const candidate = trimCandidate(match[0]);
    const href = safeHref(candidate);
    if (!href) continue;
    if (match.index > from) parts.push(document.createTextNode(text.slice(from, match.index)));
    parts.push(buildLink(href, candidate));
    from = match.index + candidate.length;
  }
  if (from < text.length) parts.push(document.createTextNode(text.slice(from)));
  parent.replaceChildren(...parts);
}
