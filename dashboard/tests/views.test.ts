import { describe, expect, it } from 'vitest';
import { actionsFor, mayApprove, rollbackPlan, stepRows } from '../src/lib/rollout';
import type { Role, WhoAmI } from '../src/lib/types';
import { evidenceSeries, metricLabel } from '../src/lib/evidence';
import { align, hostCharts } from '../src/lib/telemetry';
import { parseRoute, href } from '../src/lib/routes';
import { parseDeployForm } from '../src/lib/deploy';
import { auditQuery } from '../src/lib/audit';
import { compact, bytes, duration, percent, ms } from '../src/lib/format';
import { serviceState } from '../src/lib/services';
import type { DeploymentDetail, Measurement, ServiceStatus } from '../src/lib/types';

function detail(state: string, phase: Record<string, unknown>, history: { to: Record<string, unknown> }[] = []) {
  return {
    summary: { id: 'd1', service: 'web', version: 'v2', previous_version: 'v1', state },
    record: {
      rollout: {
        spec: { steps: [{ weight: 10, hold_ms: 30_000 }, { weight: 50, hold_ms: 60_000 }, { weight: 100, hold_ms: 0 }] },
        phase,
        step_started_at: 1_000_000,
        history,
      },
    },
  } as unknown as DeploymentDetail;
}

describe('rollout steps', () => {
  it('marks done, current (with the hold left) and pending steps', () => {
    const rows = stepRows(detail('progressing', { state: 'progressing', step: 1, weight: 50 }), 1_000_000 + 20_000);
    expect(rows.map((r) => r.state)).toEqual(['done', 'current', 'pending']);
    expect(rows[1].remainingMs).toBe(40_000);
    expect(rows[0].remainingMs).toBeNull();
  });

  it('after a rollback shows the steps reached as done and the rest skipped', () => {
    const rows = stepRows(
      detail('rolled_back', { state: 'rolled_back' }, [{ to: { state: 'progressing', step: 0 } }]),
      0,
    );
    expect(rows.map((r) => r.state)).toEqual(['done', 'skipped', 'skipped']);
  });

  it('a success has every step done', () => {
    expect(stepRows(detail('succeeded', { state: 'succeeded' }), 0).every((r) => r.state === 'done')).toBe(true);
  });
});

describe('actions', () => {
  it('a viewer gets none, whatever the state', () => {
    for (const state of ['progressing', 'paused', 'validating']) expect(actionsFor(state, false)).toEqual([]);
  });
  it('at an approval gate approve replaces resume and promote, which would be refused', () => {
    expect(actionsFor('paused', true, 'approval', true)).toEqual(['approve', 'abort', 'rollback']);
    expect(actionsFor('paused', true, 'approval', false)).toEqual(['abort', 'rollback']);
    expect(actionsFor('paused', false, 'approval', true)).toEqual(['approve']);
    expect(actionsFor('paused', false, 'approval', false)).toEqual([]);
  });
  it('offers approve to the tokens the API lets approve', () => {
    const who = (name: string, role: Role): WhoAmI => ({ name, role, can_operate: role !== 'viewer', can_admin: role === 'admin' });
    expect(mayApprove(who('release-manager', 'viewer'), 'release-manager')).toBe(true);
    expect(mayApprove(who('release-manager.alice', 'viewer'), 'release-manager')).toBe(true);
    expect(mayApprove(who('release-managers', 'admin'), 'release-manager')).toBe(false);
    expect(mayApprove(who('ci', 'operator'), 'release-manager')).toBe(false);
    expect(mayApprove(who('ci', 'operator'), 'operator')).toBe(true);
    expect(mayApprove(who('bob', 'viewer'), 'operator')).toBe(false);
    expect(mayApprove(who('root', 'admin'), 'operator')).toBe(true);
    expect(mayApprove(null, 'operator')).toBe(false);
    expect(mayApprove(who('root', 'admin'), null)).toBe(false);
  });
  it('an operator gets what the state allows', () => {
    expect(actionsFor('progressing', true)).toEqual(['promote', 'pause', 'abort', 'rollback']);
    expect(actionsFor('paused', true)).toContain('resume');
    expect(actionsFor('paused', true, 'operator')).toEqual(['resume', 'promote', 'abort', 'rollback']);
    expect(actionsFor('succeeded', true)).toEqual([]);
    expect(actionsFor('awaiting_promotion', true)).toEqual(['promote', 'abort', 'rollback']);
    expect(actionsFor('post_promotion', true)).toEqual(['abort', 'rollback']);
    expect(actionsFor('switching_back', true)).toEqual([]);
  });
});

describe('emergency rollback plan', () => {
  const status = (active: unknown, rollback_target: string | null) =>
    ({ service: 'web', stable_version: 'v1', active, rollback_target }) as unknown as ServiceStatus;
  it('during a rollout: canary to 0, both versions named', () => {
    expect(rollbackPlan(status({ version: 'v2', state: 'progressing' }, null))).toEqual({ from: 'v2', to: 'v1', during: true });
    expect(serviceState(status({ version: 'v2', state: 'paused' }, null))).toBe('paused');
  });
  it('after a promotion: back to the previous version; otherwise nothing', () => {
    expect(rollbackPlan(status({ version: 'v1', state: 'succeeded' }, 'v0'))).toEqual({ from: 'v1', to: 'v0', during: false });
    expect(rollbackPlan(status(null, null))).toBeNull();
    expect(serviceState(status({ version: 'v1', state: 'succeeded' }, 'v0'))).toBe('stable');
  });
});

describe('evidence', () => {
  const m = (at: number, evidence: object[]) =>
    ({ id: at, at: '', step: 1, outcome: 'pass', verdict: { judge: 'sequential', outcome: 'pass', reason: '', evidence, canary_requests: 1, stable_requests: 1, at } }) as unknown as Measurement;
  const e = (metric: string, canary: number, statistic: number | null) => ({
    metric,
    canary,
    stable: canary / 2,
    canary_bounds: [canary - 1, canary + 1],
    stable_bounds: null,
    statistic,
    threshold: statistic === null ? null : 20,
    outcome: 'pass',
  });

  it('one aligned series set per metric, in time order, gaps where a metric is missing', () => {
    const series = evidenceSeries([m(3000, [e('error_rate_pct', 3, 2)]), m(1000, [e('error_rate_pct', 1, 1), e('p95_latency_ms', 9, null)])]);
    expect(series.map((s) => s.metric)).toEqual(['error_rate_pct', 'p95_latency_ms']);
    const [errors, latency] = series;
    expect(errors.t).toEqual([1, 3]);
    expect(errors.canary).toEqual([1, 3]);
    expect(errors.canaryLo).toEqual([0, 2]);
    expect(errors.canaryHi).toEqual([2, 4]);
    expect(errors.stableLo).toEqual([null, null]);
    expect(errors.statistic).toEqual([1, 2]);
    expect(errors.threshold).toEqual([20, 20]);
    expect(errors.hasBounds && errors.hasStatistic).toBe(true);
    expect(latency.t).toEqual([1, 3]);
    expect(latency.canary).toEqual([9, null]);
    expect(latency.hasStatistic).toBe(false);
  });

  it('labels metrics with their unit', () => {
    expect(metricLabel('error_rate_pct')).toBe('error rate (%)');
    expect(metricLabel('p95_latency_ms')).toBe('p95 latency (ms)');
  });
});

describe('telemetry', () => {
  it('sums series with the same key and aligns on every timestamp', () => {
    const out = align(
      [
        { metric: 'network_receive_bytes_per_second', labels: { device: 'eth0' }, points: [[1000, 1], [2000, 2]] },
        { metric: 'network_receive_bytes_per_second', labels: { device: 'eth1' }, points: [[2000, 5]] },
        { metric: 'network_transmit_bytes_per_second', labels: { device: 'eth0' }, points: [[3000, 7]] },
      ],
      (s) => (s.metric.includes('receive') ? 'received' : 'sent'),
    );
    expect(out.x).toEqual([1, 2, 3]);
    expect(out.labels).toEqual(['received', 'sent']);
    expect(out.ys).toEqual([[1, 7, null], [null, null, 7]]);
  });

  it('leaves loopback out of the network chart', () => {
    const charts = hostCharts([
      { metric: 'network_receive_bytes_per_second', labels: { device: 'lo' }, points: [[1000, 100]] },
      { metric: 'cpu_percent', labels: { cpu: 'total' }, points: [[1000, 12]] },
      { metric: 'cpu_percent', labels: { cpu: '0' }, points: [[1000, 90]] },
    ]);
    expect(charts.network.x).toEqual([]);
    expect(charts.cpu.ys).toEqual([[12]]);
  });
});

describe('routes', () => {
  it('parses and builds every view path', () => {
    expect(parseRoute('/')).toEqual({ view: 'overview' });
    expect(parseRoute('/services/my%20svc')).toEqual({ view: 'service', name: 'my svc' });
    expect(parseRoute('/rollouts/abc')).toEqual({ view: 'rollout', id: 'abc' });
    expect(parseRoute('/deploy', '?service=web')).toEqual({ view: 'deploy', service: 'web' });
    expect(parseRoute('/audit')).toEqual({ view: 'audit' });
    expect(parseRoute('/nope/x/y').view).toBe('not-found');
    expect(href({ view: 'service', name: 'my svc' })).toBe('/services/my%20svc');
  });
});

describe('deploy form', () => {
  it('builds the request body', () => {
    expect(parseDeployForm({ version: ' v2 ', canary: '127.0.0.1:9003, 127.0.0.1:9004', env: 'A=1\nB=x=y', reason: 'fix' })).toEqual({
      body: { version: 'v2', canary: ['127.0.0.1:9003', '127.0.0.1:9004'], env: { A: '1', B: 'x=y' }, reason: 'fix' },
    });
  });
  it('names the field that is wrong', () => {
    expect(parseDeployForm({ version: '', canary: '', env: '', reason: '' })).toEqual({ error: expect.stringContaining('Version') });
    expect(parseDeployForm({ version: 'v2', canary: 'localhost', env: '', reason: '' })).toEqual({ error: expect.stringContaining('Canary addresses') });
    expect(parseDeployForm({ version: 'v2', canary: '', env: 'novalue', reason: '' })).toEqual({ error: expect.stringContaining('line 1') });
  });
});

describe('audit query and formats', () => {
  it('pages newest first with before_seq', () => {
    expect(auditQuery({ subject: '', action: 'deployment.create', before: 51, limit: 50 })).toBe(
      '/api/v1/audit?order=desc&limit=50&action=deployment.create&before_seq=51',
    );
  });
  it('shows numbers with units', () => {
    expect(compact(1_234_567)).toMatch(/^1[.,]23 M$/);
    expect(bytes(1536)).toMatch(/^1[.,]5 KiB$/);
    expect(duration(90_000)).toBe('1 min 30 s');
    expect(percent(null)).toBe('–');
    expect(ms(1500)).toMatch(/^1[.,]5 s$/);
  });
});

import { parseScaleForm, change } from '../src/lib/scaling';

describe('scale form', () => {
  it('builds the body and names the wrong field', () => {
    expect(parseScaleForm({ instances: '4', hold: '2h', reason: 'launch' })).toEqual({
      body: { instances: 4, for: '2h', reason: 'launch' },
    });
    expect(parseScaleForm({ instances: '0', hold: '', reason: '' })).toEqual({ error: expect.stringContaining('Instances') });
    expect(parseScaleForm({ instances: '3', hold: 'soon', reason: '' })).toEqual({ error: expect.stringContaining('Hold for') });
  });
  it('describes a decision', () => {
    expect(change(2, 5)).toBe('2 → 5 (up 3)');
    expect(change(3, 3)).toBe('3 (unchanged)');
  });
});

import { countBySeverity, incidentActions, eventSummary } from '../src/lib/incidents';
import type { Incident, IncidentEvent } from '../src/lib/types';

describe('incidents', () => {
  const incident = (severity: string, status: string) => ({ id: severity + status, severity, status }) as unknown as Incident;
  it('counts unresolved incidents by severity', () => {
    expect(
      countBySeverity([incident('critical', 'open'), incident('critical', 'acknowledged'), incident('low', 'resolved'), incident('medium', 'open')]),
    ).toEqual({ critical: 2, high: 0, medium: 1, low: 0 });
  });
  it('offers what the status allows, nothing to a viewer', () => {
    expect(incidentActions(incident('high', 'open'), true)).toEqual(['acknowledge', 'escalate', 'resolve']);
    expect(incidentActions(incident('high', 'acknowledged'), true)).toEqual(['escalate', 'resolve']);
    expect(incidentActions(incident('high', 'resolved'), true)).toEqual([]);
    expect(incidentActions(incident('high', 'open'), false)).toEqual([]);
  });
  it('sums a timeline entry up', () => {
    const event = { details: { action: 'rollback', outcome: 'done', ignored: 1 } } as unknown as IncidentEvent;
    expect(eventSummary(event)).toBe('action rollback; outcome done');
  });
});

describe('incident routes', () => {
  it('parses the list and one incident', () => {
    expect(parseRoute('/incidents')).toEqual({ view: 'incidents' });
    expect(parseRoute('/incidents/inc-1')).toEqual({ view: 'incident', id: 'inc-1' });
  });
});
