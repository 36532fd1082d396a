// Telemetry series (from GET /api/v1/telemetry) lined up on one time axis for uPlot.

import type { SeriesPoints } from './types';

export interface Aligned {
  /** Seconds since the epoch. */
  x: number[];
  ys: (number | null)[][];
  labels: string[];
}

/**
 * Groups `series` by `key` (series with the same key are summed point by point, e.g.
 * every network device) and aligns the groups on the union of their timestamps.
 */
export function align(series: SeriesPoints[], key: (s: SeriesPoints) => string): Aligned {
  const groups = new Map<string, Map<number, number>>();
  const times = new Set<number>();
  for (const s of series) {
    const k = key(s);
    let group = groups.get(k);
    if (!group) {
      group = new Map();
      groups.set(k, group);
    }
    for (const [at, value] of s.points) {
      times.add(at);
      group.set(at, (group.get(at) ?? 0) + value);
    }
  }
  const x = [...times].sort((a, b) => a - b);
  const labels = [...groups.keys()];
  const ys = labels.map((label) => {
    const group = groups.get(label)!;
    return x.map((at) => group.get(at) ?? null);
  });
  return { x: x.map((at) => at / 1000), ys, labels };
}

export function pick(series: SeriesPoints[], metric: string, where: Record<string, string> = {}) {
  return series.filter(
    (s) => s.metric === metric && Object.entries(where).every(([k, v]) => s.labels[k] === v),
  );
}

/** The host charts of the overview. */
export function hostCharts(host: SeriesPoints[]) {
  const loopback = (s: SeriesPoints) => s.labels.device === 'lo';
  return {
    cpu: align(pick(host, 'cpu_percent', { cpu: 'total' }), () => 'CPU'),
    memory: align(pick(host, 'memory_used_percent'), () => 'memory'),
    disk: align(
      [
        ...pick(host, 'disk_read_bytes_per_second'),
        ...pick(host, 'disk_written_bytes_per_second'),
      ],
      (s) => (s.metric.startsWith('disk_read') ? 'read' : 'written'),
    ),
    filesystems: align(pick(host, 'filesystem_used_percent'), (s) => s.labels.mountpoint ?? '?'),
    network: align(
      [
        ...pick(host, 'network_receive_bytes_per_second'),
        ...pick(host, 'network_transmit_bytes_per_second'),
      ].filter((s) => !loopback(s)),
      (s) => (s.metric.includes('receive') ? 'received' : 'sent'),
    ),
  };
}

/** One service's per-version charts: request rate, error rate, p95. */
export function versionCharts(series: SeriesPoints[]) {
  const byVersion = (s: SeriesPoints) => `${s.labels.version ?? '?'} (${s.labels.set ?? '?'})`;
  return {
    rps: align(pick(series, 'requests_per_second'), byVersion),
    errors: align(pick(series, 'error_rate_percent'), byVersion),
    p95: align(pick(series, 'p95_ms'), byVersion),
  };
}
