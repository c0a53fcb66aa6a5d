// The protocol facts the server owns (limits, close codes) and the API's paths, read once from
// the page: the room view renders chat.protocol.codes.client_config() as <script
// type="application/json" id="chat-config">, and the paths from the URLconf as #chat-paths.
// No fallback values here on purpose: a second copy of a limit is what this module replaces.

function readJson(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`The page has no #${id}: the room view renders it`);
  return JSON.parse(element.textContent);
}

const config = readJson('chat-config');
const paths = readJson('chat-paths');

/** Fill a path's "{slug}" with room `slug`. */
function forRoom(path) {
  return (slug) => path.replace('{slug}', encodeURIComponent(slug));
}

/** The JSON API's paths: fixed ones, and functions of a room's slug. */
export const API = Object.freeze({
  rooms: paths.rooms,
  dms: paths.dms,
  users: paths.users,
  search: paths.search,
  members: forRoom(paths.members),
  messages: forRoom(paths.messages),
});

/** Longest message body or caption, in code points (CHAT_MAX_BODY_CHARS). */
export const MAX_BODY_CHARS = config.max_body_chars;
/** Largest attachment, in bytes (CHAT_MAX_ATTACHMENT_BYTES). */
export const MAX_ATTACHMENT_BYTES = config.max_attachment_bytes;
/** How long after posting its author may edit a message, in seconds; 0: never (CHAT_EDIT_WINDOW). */
export const EDIT_WINDOW_S = config.edit_window_s;
/** Content types the server accepts for attachments (CHAT_ALLOWED_CONTENT_TYPES). */
export const ALLOWED_CONTENT_TYPES = Object.freeze([...config.allowed_content_types]);

// Close codes the server sends (PROTOCOL.md section 7, and this server's 4429).
export const CLOSE_NOT_AUTHENTICATED = config.close.not_authenticated;
export const CLOSE_FORBIDDEN = config.close.forbidden;
export const CLOSE_NOT_FOUND = config.close.not_found;
export const CLOSE_TOO_MANY_CONNECTIONS = config.close.too_many_connections;
/** A worker restarting (PROTOCOL.md section 9): reconnect at once, within RESTART_JITTER_MS. */
export const CLOSE_SERVICE_RESTART = config.close.service_restart;
export const RESTART_JITTER_MS = config.restart_jitter_ms;
