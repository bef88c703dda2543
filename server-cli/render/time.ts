// Times as an operator reads them: "3 h ago", "in 2 d", "up 4 d 3 h".

/** "just now", "42 s ago", "5 min ago", "3 h ago", "12 d ago"; "in ..." for the future. */
export function relativeTime(when: string | number, now: number): string {
  const t = typeof when === 'number' ? when : Date.parse(when);
  if (Number.isNaN(t)) return String(when);
  const diffSec = Math.round((now - t) / 1000);
  const abs = Math.abs(diffSec);
  if (abs < 5) return 'just now';
  const span = roughSpan(abs);
  return diffSec > 0 ? `${span} ago` : `in ${span}`;
}

function roughSpan(sec: number): string {
  if (sec < 60) return `${sec} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min`;
  if (sec < 48 * 3600) return `${Math.floor(sec / 3600)} h`;
  return `${Math.floor(sec / 86400)} d`;
}

/** An uptime or a length of time, two units at most: "4 d 3 h", "2 h 5 min", "40 s". */
export function formatDuration(totalSec: number): string {
  const sec = Math.max(0, Math.floor(totalSec));
  const d = Math.floor(sec / 86400);
  const h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

/** A length of work, as step timings read: "0.4s", "42.0s", "2m05s", "1h03m". */
export function formatElapsed(ms: number): string {
  const sec = Math.max(0, ms) / 1000;
  if (sec < 59.95) return `${sec.toFixed(1)}s`;
  const whole = Math.round(sec);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')}m`;
}
