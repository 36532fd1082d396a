// The judge's evidence over time, from the measurements API: one series set per
// metric the judge reported (estimates with confidence bounds for canary and
// stable, and the e-value against its threshold), ready for uPlot.

import type { Measurement, Outcome } from './types';

export interface EvidenceSeries {
  metric: string;
  /** Seconds since the epoch (uPlot's x). */
  t: number[];
  canary: (number | null)[];
  canaryLo: (number | null)[];
  canaryHi: (number | null)[];
  stable: (number | null)[];
  stableLo: (number | null)[];
  stableHi: (number | null)[];
  statistic: (number | null)[];
  threshold: (number | null)[];
  hasBounds: boolean;
  hasStatistic: boolean;
  lastOutcome: Outcome;
}

export function evidenceSeries(measurements: Measurement[]): EvidenceSeries[] {
  const byMetric = new Map<string, EvidenceSeries>();
  const sorted = [...measurements].sort((a, b) => a.verdict.at - b.verdict.at);
  sorted.forEach((m, index) => {
    for (const e of m.verdict.evidence) {
      let s = byMetric.get(e.metric);
      if (!s) {
        s = {
          metric: e.metric,
          t: [],
          canary: [],
          canaryLo: [],
          canaryHi: [],
          stable: [],
          stableLo: [],
          stableHi: [],
          statistic: [],
          threshold: [],
          hasBounds: false,
          hasStatistic: false,
          lastOutcome: e.outcome,
        };
        // A metric that appears late is blank before it appeared.
        for (let i = 0; i < index; i++) pushBlank(s, sorted[i].verdict.at / 1000);
        byMetric.set(e.metric, s);
      }
      s.t.push(m.verdict.at / 1000);
      s.canary.push(e.canary);
      s.stable.push(e.stable);
      s.canaryLo.push(e.canary_bounds?.[0] ?? null);
      s.canaryHi.push(e.canary_bounds?.[1] ?? null);
      s.stableLo.push(e.stable_bounds?.[0] ?? null);
      s.stableHi.push(e.stable_bounds?.[1] ?? null);
      s.statistic.push(e.statistic);
      s.threshold.push(e.threshold);
      s.hasBounds ||= e.canary_bounds !== null || e.stable_bounds !== null;
      s.hasStatistic ||= e.statistic !== null;
      s.lastOutcome = e.outcome;
    }
    // Metrics missing from this verdict get a gap, keeping every array aligned.
    for (const s of byMetric.values()) {
      if (s.t.length < index + 1) pushBlank(s, m.verdict.at / 1000);
    }
  });
  return [...byMetric.values()];
}

function pushBlank(s: EvidenceSeries, t: number) {
  s.t.push(t);
  for (const key of [
    'canary',
    'canaryLo',
    'canaryHi',
    'stable',
    'stableLo',
    'stableHi',
    'statistic',
    'threshold',
  ] as const) {
    s[key].push(null);
  }
}

/** "error_rate_pct" → "error rate (%)", "p95_latency_ms" → "p95 latency (ms)". */
export function metricLabel(metric: string): string {
  const units: [string, string][] = [
    ['_pct', ' (%)'],
    ['_ms', ' (ms)'],
  ];
  for (const [suffix, unit] of units) {
    if (metric.endsWith(suffix)) return metric.slice(0, -suffix.length).replaceAll('_', ' ') + unit;
  }
  return metric.replaceAll('_', ' ');
}
