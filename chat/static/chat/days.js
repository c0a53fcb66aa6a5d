// Local calendar days for the separators between messages: a key per day and its label.

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const DATE_YEAR_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: 'full' });

function pad(number) {
  return String(number).padStart(2, '0');
}

/** Return the local day of `date` as "YYYY-MM-DD". */
export function dayKey(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Return "Today", "Yesterday", or the date of a day key (with the year when it is not this one). */
export function dayLabel(key, now = new Date()) {
  const [year, month, day] = key.split('-').map(Number);
  const date = new Date(year, month - 1, day);
  if (key === dayKey(now)) return 'Today';
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (key === dayKey(yesterday)) return 'Yesterday';
  return year === now.getFullYear() ? DATE_FORMAT.format(date) : DATE_YEAR_FORMAT.format(date);
}
