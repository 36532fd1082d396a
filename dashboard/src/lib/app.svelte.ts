// The dashboard's shared state: the session, every service's status kept current
// by the event stream, and the stream's own state.

import { Api, ApiError, sessionTokenStore } from './api';
import { LiveStream, coalescer, type EventSourceLike, type LiveEvent, type LiveStatus } from './live';
import type { HealthMetrics, ServiceStatus, ServiceView, WhoAmI } from './types';

export const api = new Api(sessionTokenStore());

class AppState {
  whoami = $state<WhoAmI | null>(null);
  live = $state<LiveStatus>('stopped');
  services = $state<Record<string, ServiceStatus>>({});
  configs = $state<Record<string, ServiceView>>({});
  order = $state<string[]>([]);
  health = $state<HealthMetrics | null>(null);
  /** Bumped on every event and resync; views that show derived data watch it. */
  changes = $state(0);
  error = $state<string | null>(null);
}

export const app = new AppState();

type Listener = (event: LiveEvent | null) => void;
const listeners = new Set<Listener>();

/** Views hear every live event (`null`: a resync, reload everything). */
export function onLive(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const refreshService = coalescer(async (name) => {
  const status = await api.get<ServiceStatus>(`/api/v1/services/${encodeURIComponent(name)}/status`);
  app.services[name] = status;
});

export async function loadAll(): Promise<void> {
  const [configs, statuses] = await Promise.all([
    api.get<ServiceView[]>('/api/v1/services'),
    api.get<ServiceStatus[]>('/api/v1/status'),
  ]);
  app.configs = Object.fromEntries(configs.map((c) => [c.name, c]));
  app.order = configs.map((c) => c.name);
  app.services = Object.fromEntries(statuses.map((s) => [s.service, s]));
  loadHealth();
}

export async function loadHealth(): Promise<void> {
  try {
    app.health = await api.get<HealthMetrics>('/health/metrics');
  } catch {
    // Shown as unknown; the next poll tries again.
  }
}

export function refresh(service: string): Promise<void> {
  return refreshService(service);
}

const stream = new LiveStream({
  ticket: async () => (await api.post<{ ticket: string }>('/api/v1/events/ticket')).ticket,
  open: (url) => new EventSource(url) as unknown as EventSourceLike,
  setTimeout: (fn, ms) => window.setTimeout(fn, ms),
  clearTimeout: (handle) => window.clearTimeout(handle as number),
});
stream.onStatus = (status) => (app.live = status);
stream.onEvent = (event) => {
  app.changes += 1;
  // Host-wide incidents name no service.
  if (event.service && app.order.includes(event.service)) refreshService(event.service);
  for (const listener of listeners) listener(event);
};
stream.onResync = () => {
  app.changes += 1;
  loadAll().catch(() => {});
  for (const listener of listeners) listener(null);
};

let visibilityHooked = false;

/** Checks the token, loads the state and opens the stream. */
export async function signIn(token?: string): Promise<void> {
  const candidate = token ?? api.tokens.get();
  if (!candidate) throw new ApiError(401, 'no token');
  const whoami = await api.request<WhoAmI>('GET', '/api/v1/whoami', undefined, candidate);
  api.tokens.set(candidate);
  app.whoami = whoami;
  app.error = null;
  await loadAll();
  if (!visibilityHooked) {
    visibilityHooked = true;
    document.addEventListener('visibilitychange', () => {
      const hidden = document.visibilityState === 'hidden';
      stream.setHidden(hidden);
      if (!hidden) loadHealth();
    });
  }
  stream.setHidden(document.visibilityState === 'hidden');
  stream.start();
}

export function signOut(message: string | null = null): void {
  stream.stop();
  api.tokens.clear();
  app.whoami = null;
  app.services = {};
  app.error = message;
}

api.onUnauthorized = () => signOut('The token is no longer accepted; sign in again.');
