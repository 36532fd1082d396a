// A service's state in one word, for the overview and the service view.

import type { ServiceStatus } from './types';

/** The rollout's state while one is in flight, else `stable`. */
export function serviceState(status: ServiceStatus): string {
  const active = status.active;
  if (active && !['succeeded', 'rolled_back', 'failed', 'aborted'].includes(active.state)) {
    return active.state;
  }
  return 'stable';
}
