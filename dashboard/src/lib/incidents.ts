// Incidents: counts by severity for the overview, the actions that apply, and a
// timeline entry in words.

import type { Incident, IncidentEvent, Severity } from './types';

export const SEVERITIES: Severity[] = ['critical', 'high', 'medium', 'low'];

export function countBySeverity(incidents: Incident[]): Record<Severity, number> {
  const counts: Record<Severity, number> = { critical: 0, high: 0, medium: 0, low: 0 };
  for (const i of incidents) if (i.status !== 'resolved' && i.severity in counts) counts[i.severity] += 1;
  return counts;
}

export type IncidentAction = 'acknowledge' | 'escalate' | 'resolve';

export function incidentActions(incident: Incident, canOperate: boolean): IncidentAction[] {
  if (!canOperate) return [];
  switch (incident.status) {
    case 'open':
      return ['acknowledge', 'escalate', 'resolve'];
    case 'acknowledged':
      return ['escalate', 'resolve'];
    default:
      return [];
  }
}

/** The timeline's detail column: the reason, the action and its outcome, or the notifier. */
export function eventSummary(event: IncidentEvent): string {
  const d = (event.details ?? {}) as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of ['reason', 'action', 'outcome', 'notifier', 'channel', 'status', 'message', 'error']) {
    const value = d[key];
    if (value !== undefined && value !== null && value !== '') {
      parts.push(`${key} ${typeof value === 'string' ? value : JSON.stringify(value)}`);
    }
  }
  return parts.join('; ');
}
