// What the rollout view shows about steps and which actions apply, from the API's
// deployment detail and service status.

import type { DeploymentDetail, Role, ServiceStatus, WhoAmI } from './types';

export type StepState = 'done' | 'current' | 'pending' | 'skipped';

export interface StepRow {
  /** 1-based, as rampart shows steps everywhere. */
  number: number;
  weight: number;
  holdMs: number;
  state: StepState;
  /** Milliseconds left in the current step's hold (current step only). */
  remainingMs: number | null;
}

const TERMINAL = ['succeeded', 'rolled_back', 'failed', 'aborted'];

export function isTerminal(state: string): boolean {
  return TERMINAL.includes(state);
}

export function stepRows(detail: DeploymentDetail, now: number): StepRow[] {
  const rollout = detail.record.rollout;
  const phase = rollout.phase;
  const current = typeof phase.step === 'number' ? phase.step : null;
  const state = detail.summary.state;
  return rollout.spec.steps.map((step, i) => {
    let rowState: StepState;
    if (current !== null) {
      rowState = i < current ? 'done' : i === current ? 'current' : 'pending';
    } else if (state === 'succeeded' || state === 'promoting') {
      rowState = 'done';
    } else if (isTerminal(state)) {
      rowState = reachedStep(detail, i) ? 'done' : 'skipped';
    } else {
      rowState = 'pending';
    }
    const remainingMs =
      rowState === 'current' && phase.state === 'progressing'
        ? Math.max(0, rollout.step_started_at + step.hold_ms - now)
        : null;
    return { number: i + 1, weight: step.weight, holdMs: step.hold_ms, state: rowState, remainingMs };
  });
}

/** Whether the rollout's history shows it at step `index` (0-based) at some time. */
function reachedStep(detail: DeploymentDetail, index: number): boolean {
  return detail.record.rollout.history.some(
    (t) => typeof t.to.step === 'number' && t.to.step >= index,
  );
}

export type Action = 'approve' | 'promote' | 'pause' | 'resume' | 'abort' | 'rollback';

/**
 * The actions that apply to a rollout in `state` (none for a viewer). `cause` is why a
 * paused rollout waits: at an approval gate resume and promote are refused until the
 * step is approved, so approve takes their place, for whoever may approve (a viewer
 * too, when the approval names its token).
 */
export function actionsFor(
  state: string,
  canOperate: boolean,
  cause?: unknown,
  canApprove = false,
): Action[] {
  if (state === 'paused' && cause === 'approval') {
    const operate: Action[] = canOperate ? ['abort', 'rollback'] : [];
    return canApprove ? ['approve', ...operate] : operate;
  }
  if (!canOperate) return [];
  switch (state) {
    case 'progressing':
      return ['promote', 'pause', 'abort', 'rollback'];
    case 'paused':
      return ['resume', 'promote', 'abort', 'rollback'];
    case 'validating':
    case 'starting':
      return ['abort', 'rollback'];
    // Blue-green: the preview can be switched to (promote) or dropped; after the
    // switch, abort and rollback switch back to the previous version.
    case 'previewing':
    case 'awaiting_promotion':
      return ['promote', 'abort', 'rollback'];
    case 'post_promotion':
      return ['abort', 'rollback'];
    default:
      return [];
  }
}

/**
 * What an emergency rollback of the service would do, in words for the
 * confirmation: during a rollout the canary goes to 0 %; after a promotion the
 * previous version comes back. `null` when there is nothing to roll back.
 */
export function rollbackPlan(
  status: ServiceStatus,
): { from: string; to: string; during: boolean } | null {
  if (status.active && !isTerminal(status.active.state)) {
    return { from: status.active.version, to: status.stable_version, during: true };
  }
  if (status.rollback_target) {
    return { from: status.stable_version, to: status.rollback_target, during: false };
  }
  return null;
}

const ROLES: Role[] = ['viewer', 'operator', 'admin'];

/**
 * Whether `who` may give the approval `needed`, by the API's rule: the token's name is
 * `needed` or under it (`release-manager.alice`), or `needed` is a role the token holds
 * or exceeds. The API decides; this only chooses whether to offer the button.
 */
export function mayApprove(who: WhoAmI | null, needed: string | null | undefined): boolean {
  if (!who || !needed) return false;
  if (who.name === needed || who.name.startsWith(`${needed}.`)) return true;
  const neededRank = ROLES.indexOf(needed as Role);
  return neededRank >= 0 && ROLES.indexOf(who.role) >= neededRank;
}
