// Byte counts in binary units, like `df -h` and `free -h`: "512 B", "1.5 GiB", "37 GiB".

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  const sign = bytes < 0 ? '-' : '';
  let n = Math.abs(bytes);
  let unit = 0;
  while (n >= 1024 && unit < UNITS.length - 1) {
    n /= 1024;
    unit++;
  }
  if (unit === 0) return `${sign}${Math.round(n)} B`;
  // One decimal while it carries information; "1024.0 MiB" would read oddly, so round up a unit.
  const fixed = n.toFixed(1);
  const text = Number(fixed) < 10 ? fixed : String(Math.round(n));
  if (text === '1024' && unit < UNITS.length - 1) return `${sign}1.0 ${UNITS[unit + 1]}`;
  return `${sign}${text} ${UNITS[unit]}`;
}

export function formatRate(bytesPerSec: number): string {
  return `${formatBytes(bytesPerSec)}/s`;
}

/** "41%", "3.5%", "0%". */
export function formatPercent(value: number): string {
  if (!Number.isFinite(value)) return '-';
  const rounded = Math.abs(value) < 10 && value !== 0 ? Math.round(value * 10) / 10 : Math.round(value);
  return `${rounded}%`;
}
