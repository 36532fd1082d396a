// Numbers with units and times in the viewer's own time zone.

const SI = ['', 'k', 'M', 'G', 'T', 'P'];

/** 1234567 → "1.23 M"; below 1000 as is with at most `digits` decimals. */
export function compact(value: number | null | undefined, unit = '', digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  let v = value;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < SI.length - 1) {
    v /= 1000;
    i += 1;
  }
  const text = i === 0 ? round(v, digits) : round(v, 2);
  const suffix = `${SI[i]}${unit}`;
  return suffix ? `${text} ${suffix}` : text;
}

/** Bytes with binary prefixes: 1536 → "1.5 KiB". */
export function bytes(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = value;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${round(v, i === 0 ? 0 : digits)} ${units[i]}`;
}

export function percent(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return `${round(value, digits)} %`;
}

export function ms(value: number | null | undefined, digits?: number): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  if (value >= 1000) return `${round(value / 1000, digits ?? 2)} s`;
  return `${round(value, digits ?? (value < 10 ? 2 : 1))} ms`;
}

/** 90000 → "1 min 30 s". */
export function duration(millis: number): string {
  if (!Number.isFinite(millis) || millis < 0) return '–';
  const s = Math.round(millis / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}

function round(value: number, digits: number): string {
  return new Intl.NumberFormat(undefined, { maximumFractionDigits: digits }).format(value);
}

/** A time (ms since the epoch or RFC 3339) in the viewer's time zone. */
export function time(at: number | string | null | undefined, timeZone?: string): string {
  if (at === null || at === undefined) return '–';
  const date = typeof at === 'number' ? new Date(at) : new Date(at);
  if (Number.isNaN(date.getTime())) return String(at);
  return new Intl.DateTimeFormat(undefined, {
    dateStyle: 'medium',
    timeStyle: 'medium',
    timeZone,
  }).format(date);
}

/** The viewer's time zone name, shown once in the footer. */
export function viewerTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** "progressing" → "progressing", "rolled_back" → "rolled back". */
export function stateLabel(state: string): string {
  return state.replaceAll('_', ' ');
}
