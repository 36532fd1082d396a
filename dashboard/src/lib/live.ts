// One server-sent event stream for the whole dashboard.
//
// EventSource cannot send an Authorization header, so each connection first trades
// the token for a single-use ticket (POST /api/v1/events/ticket). A used ticket does
// not work twice, so reconnecting is done here rather than by the browser: close,
// wait (500 ms, doubling to 10 s), new ticket, and `last_event_id` so the server
// sends what was missed (or `resync` when it no longer has it). While the tab is
// hidden the stream is closed; on return it resumes the same way.

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'paused' | 'stopped';

export interface LiveEvent {
  /** `transition`, `analysis`, `traffic`, `version_stopped`, `scaling`, `incident`. */
  type: string;
  /** Empty for a host-wide incident. */
  service: string;
  deployment_id: string | null;
  data: Record<string, unknown>;
}

/** The part of EventSource used here (a fake in tests). */
export interface EventSourceLike {
  onopen: ((this: unknown, ev: Event) => unknown) | null;
  onerror: ((this: unknown, ev: Event) => unknown) | null;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}

export interface LiveDeps {
  ticket: () => Promise<string>;
  open: (url: string) => EventSourceLike;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
}

export const EVENT_TYPES = ['transition', 'analysis', 'traffic', 'version_stopped', 'scaling', 'incident'];
export const FIRST_RETRY_MS = 500;
export const MAX_RETRY_MS = 10_000;

export class LiveStream {
  status: LiveStatus = 'stopped';
  lastEventId: string | null = null;
  private source: EventSourceLike | null = null;
  private retryMs = FIRST_RETRY_MS;
  private timer: unknown = null;
  /** Bumped on every (re)connect and stop, so a late callback of an old attempt is ignored. */
  private attempt = 0;
  private hidden = false;
  private running = false;

  onEvent: (event: LiveEvent) => void = () => {};
  /** The server lost track of what this client has: reload state from REST. */
  onResync: () => void = () => {};
  onStatus: (status: LiveStatus) => void = () => {};

  constructor(private readonly deps: LiveDeps) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.connect('connecting');
  }

  stop(): void {
    this.running = false;
    this.attempt += 1;
    this.closeSource();
    this.setStatus('stopped');
  }

  /** Pause while the page is hidden; resume (with what was missed) when shown. */
  setHidden(hidden: boolean): void {
    if (hidden === this.hidden) return;
    this.hidden = hidden;
    if (!this.running) return;
    if (hidden) {
      this.attempt += 1;
      this.closeSource();
      this.setStatus('paused');
    } else {
      this.retryMs = FIRST_RETRY_MS;
      this.connect('reconnecting');
    }
  }

  private setStatus(status: LiveStatus) {
    if (status === this.status) return;
    this.status = status;
    this.onStatus(status);
  }

  private closeSource() {
    if (this.timer !== null) {
      this.deps.clearTimeout(this.timer);
      this.timer = null;
    }
    this.source?.close();
    this.source = null;
  }

  private async connect(status: LiveStatus) {
    this.closeSource();
    const attempt = ++this.attempt;
    this.setStatus(status);
    let ticket: string;
    try {
      ticket = await this.deps.ticket();
    } catch {
      if (attempt === this.attempt) this.retry();
      return;
    }
    if (attempt !== this.attempt) return;
    const params = new URLSearchParams({ ticket });
    if (this.lastEventId) params.set('last_event_id', this.lastEventId);
    const source = this.deps.open(`/api/v1/events?${params}`);
    this.source = source;
    source.onopen = () => {
      if (attempt !== this.attempt) return;
      this.retryMs = FIRST_RETRY_MS;
      this.setStatus('live');
    };
    source.onerror = () => {
      if (attempt !== this.attempt) return;
      // The ticket is spent: the browser's own retry would fail, so stop it.
      this.retry();
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => {
        if (attempt !== this.attempt) return;
        this.remember(message);
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(message.data);
        } catch {
          return;
        }
        this.onEvent({
          type,
          service: String(parsed.service ?? ''),
          deployment_id: (parsed.deployment_id as string | null) ?? null,
          data: parsed,
        });
      });
    }
    for (const type of ['resync', 'lagged']) {
      source.addEventListener(type, (message) => {
        if (attempt !== this.attempt) return;
        this.remember(message);
        this.onResync();
      });
    }
  }

  private remember(message: MessageEvent) {
    if (message.lastEventId) this.lastEventId = message.lastEventId;
  }

  private retry() {
    this.closeSource();
    if (!this.running || this.hidden) return;
    this.setStatus('reconnecting');
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    const attempt = this.attempt;
    this.timer = this.deps.setTimeout(() => {
      this.timer = null;
      if (attempt === this.attempt) this.connect('reconnecting');
    }, wait);
  }
}

/**
 * Runs `load(key)` for every key asked for, at most one at a time per key: a key
 * asked for again while loading is loaded once more afterwards, so many events in a
 * burst cost two requests and the last state is always fetched.
 */
export function coalescer(load: (key: string) => Promise<void>) {
  const running = new Set<string>();
  const again = new Set<string>();
  const run = async (key: string): Promise<void> => {
    running.add(key);
    try {
      await load(key);
    } catch {
      // The next event or resync loads it again.
    } finally {
      running.delete(key);
    }
    if (again.delete(key)) await run(key);
  };
  return (key: string): Promise<void> => {
    if (running.has(key)) {
      again.add(key);
      return Promise.resolve();
    }
    return run(key);
  };
}
