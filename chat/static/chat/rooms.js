// Room list page: keep the "N online" counts fresh without reloading.

const REFRESH_EVERY_MS = 20000;
const list = document.getElementById('room-list');

async function refreshCounts() {
  if (document.hidden) return;
  let response;
  try {
    response = await fetch('/api/rooms/', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  } catch {
    return;
  }
  if (!response.ok) return;
  const data = await response.json().catch(() => null);
  for (const room of Array.isArray(data?.rooms) ? data.rooms : []) {
    const item = [...list.querySelectorAll('.room-item')].find((node) => node.dataset.roomSlug === room.slug);
    const count = item?.querySelector('.room-online');
    if (count && Number.isInteger(room.online)) count.textContent = `${room.online} online`;
  }
}

if (list) {
  setInterval(refreshCounts, REFRESH_EVERY_MS);
  document.addEventListener('visibilitychange', refreshCounts);
}
