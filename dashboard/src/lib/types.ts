// Shapes of the API responses the dashboard reads (see /api/v1/openapi.json).

export type Role = 'viewer' | 'operator' | 'admin';

export interface WhoAmI {
  name: string;
  role: Role;
  can_operate: boolean;
  can_admin: boolean;
}

export interface StepView {
  weight: number;
  hold: string;
}

export interface ServiceView {
  name: string;
  listen: string;
  backend: string;
  steps: StepView[];
  judge: string;
  analysis_interval: string;
  checks: string[];
}

export interface SetNumbers {
  requests: number;
  errors: number;
  error_rate_pct: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}

export interface Phase {
  state: string;
  step?: number;
  weight?: number;
  cause?: unknown;
}

export interface Transition {
  at: number;
  from: Phase;
  to: Phase;
  reason: string;
  actor: unknown;
}

export interface Evidence {
  metric: string;
  canary: number | null;
  stable: number | null;
  canary_bounds: [number, number] | null;
  stable_bounds: [number, number] | null;
  statistic: number | null;
  threshold: number | null;
  outcome: Outcome;
}

export type Outcome = 'pass' | 'fail' | 'inconclusive';

export interface Verdict {
  judge: string;
  outcome: Outcome;
  reason: string;
  evidence: Evidence[];
  canary_requests: number;
  stable_requests: number;
  at: number;
}

export interface ActiveRollout {
  id: string;
  version: string;
  phase: Phase;
  state: string;
  step: number | null;
  steps: number;
  canary_weight: number;
  last_verdict: Verdict | null;
  last_transition: Transition | null;
}

export interface InstanceStatus {
  addr: string;
  state: string;
  in_flight: number;
  consecutive_failures: number;
}

export interface SetStatus {
  version: string;
  instances: InstanceStatus[];
}

export interface TrafficStatus {
  canary_weight: number;
  stable: SetStatus;
  canary: SetStatus | null;
  in_flight: number;
}

export interface DeploymentSummary {
  id: string;
  service: string;
  version: string;
  previous_version: string | null;
  state: string;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface ServiceStatus {
  service: string;
  listen: string;
  backend: string;
  stable_version: string;
  rollback_target: string | null;
  active: ActiveRollout | null;
  last_deployment: DeploymentSummary | null;
  live: { window_secs: number; stable: SetNumbers; canary: SetNumbers };
  traffic: TrafficStatus;
}

export interface RolloutStep {
  weight: number;
  hold_ms: number;
  /** Who must approve the step before the rollout leaves it: a token name or role. */
  approve?: string | null;
}

export interface DeploymentEvent {
  id: number;
  at: string;
  kind: string;
  message: string;
  data: unknown;
}

export interface Measurement {
  id: number;
  at: string;
  step: number;
  outcome: Outcome;
  verdict: Verdict;
}

export interface MeasurementPage {
  total: number;
  offset: number;
  limit: number;
  items: Measurement[];
}

export interface DeploymentDetail {
  summary: DeploymentSummary;
  record: {
    id: string;
    rollout: {
      service: string;
      version: string;
      previous_version: string | null;
      spec: { steps: RolloutStep[]; analysis_interval_ms: number };
      phase: Phase;
      step_started_at: number;
      history: Transition[];
      last_verdict: Verdict | null;
    };
    actor: string;
    reason: string;
  };
  analysis: { measurements: number; by_outcome: Record<string, number> };
  events: DeploymentEvent[];
  validation: ValidationResult | null;
}

export interface ValidationResult {
  passed?: unknown[];
  failed?: unknown[];
  warnings?: unknown[];
  can_deploy?: boolean;
  execution_time_ms?: number;
  [key: string]: unknown;
}

export interface SeriesPoints {
  metric: string;
  labels: Record<string, string>;
  points: [number, number][];
}

export interface TelemetryHistory {
  now: number;
  since: number;
  step_secs: number;
  interval_secs: number;
  host: SeriesPoints[];
  services: Record<string, SeriesPoints[]>;
}

export interface ScorePart {
  part: string;
  subject: string;
  observed: number | null;
  unit: string;
  penalty: number;
  counted: boolean;
  max_points: number;
}

export interface Alert {
  severity: string;
  subject: string;
  message: string;
}

export interface HealthMetrics {
  health_score: number;
  active_alerts: number;
  critical_alerts: number;
  score_parts: ScorePart[];
  alerts: Alert[];
  metrics_summary: {
    cpu_percent: number | null;
    memory_percent: number | null;
    load1: number;
    fullest_filesystem: [string, number] | null;
    collected_at: number;
  } | null;
}

export interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  subject: string;
  details: unknown;
  prev_hash: string;
  hash: string;
}

export interface AuditVerification {
  ok: boolean;
  entries_checked: number;
  first_bad_seq: number | null;
  problem: string | null;
  head_hash: string | null;
}

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
}

export interface ScalingDecision {
  id: number | null;
  service: string;
  set: string;
  version: string;
  at: string | null;
  from: number;
  to: number;
  status: string;
  actor: string;
  reason: string;
  error: string | null;
}

export interface SetSize {
  version: string;
  instances: number;
  ready: number;
}

export interface ScalingDoc {
  service: string;
  autoscaled: boolean;
  mode: string | null;
  stable: SetSize;
  canary: SetSize | null;
  min: number | null;
  max: number | null;
  budget_max: number | null;
  operator_floor: { instances: number; until: number; actor: string } | null;
  sync_secs: number | null;
  decisions: ScalingDecision[];
}

export interface Recommendation {
  service: string;
  kind: string;
  message: string;
  evidence: unknown;
}

export type Severity = 'critical' | 'high' | 'medium' | 'low';

export interface Incident {
  id: string;
  rule: string | null;
  service: string | null;
  status: 'open' | 'acknowledged' | 'resolved';
  severity: Severity;
  title: string;
  opened_at: string;
  updated_at: string;
  acknowledged_at: string | null;
  escalated_at: string | null;
  escalations: number;
  closed_at: string | null;
  repeats: number;
  last_seen_at: string | null;
  details: unknown;
}

export interface IncidentEvent {
  id: number;
  incident_id: string;
  at: string;
  kind: string;
  actor: string;
  details: unknown;
}

/** The incident's fields and its timeline, oldest event first. */
export interface IncidentDetail extends Incident {
  timeline: IncidentEvent[];
}
