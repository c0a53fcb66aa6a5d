// The JSON API over HTTP with the session cookie (PROTOCOL.md sections 1 and 12). A session
// POST needs Django's CSRF token, which every page has: the logout form holds one.

/** An API answer that is not 2xx: `status`, and the server's `code` and `detail` when it sent them. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

function csrfToken() {
  const cookie = document.cookie.split('; ').find((part) => part.startsWith('csrftoken='));
  if (cookie) return decodeURIComponent(cookie.slice('csrftoken='.length));
  return document.querySelector('input[name="csrfmiddlewaretoken"]')?.value ?? '';
}

/** Return `path` with the query `params` (entries whose value is null or undefined are left out). */
export function apiUrl(path, params = {}) {
  const url = new URL(path, window.location.href);
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) url.searchParams.set(key, String(value));
  }
  return url.pathname + url.search;
}

async function call(method, path, { body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRFToken'] = csrfToken();
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    signal,
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.error, data?.detail);
  return { status: response.status, data: data ?? {} };
}

/** GET `path` and return its JSON body; `signal` aborts it. */
export async function getJson(path, { signal } = {}) {
  return (await call('GET', path, { signal })).data;
}

/** POST `body` as JSON to `path`; return { status, data }. */
export function postJson(path, body) {
  return call('POST', path, { body });
}
