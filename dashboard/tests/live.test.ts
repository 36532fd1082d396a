import { describe, expect, it } from 'vitest';
import { LiveStream, coalescer, FIRST_RETRY_MS, type EventSourceLike, type LiveEvent } from '../src/lib/live';

class FakeSource implements EventSourceLike {
  onopen: ((this: unknown, ev: Event) => unknown) | null = null;
  onerror: ((this: unknown, ev: Event) => unknown) | null = null;
  listeners = new Map<string, ((ev: MessageEvent) => void)[]>();
  closed = false;
  constructor(readonly url: string) {}
  addEventListener(type: string, listener: (ev: MessageEvent) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close() {
    this.closed = true;
  }
  emit(type: string, data: unknown, lastEventId = '') {
    for (const l of this.listeners.get(type) ?? []) {
      l({ data: JSON.stringify(data), lastEventId } as MessageEvent);
    }
  }
}

function harness() {
  const sources: FakeSource[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  let tickets = 0;
  const stream = new LiveStream({
    ticket: async () => `t${++tickets}`,
    open: (url) => {
      const s = new FakeSource(url);
      sources.push(s);
      return s;
    },
    setTimeout: (fn, ms) => timers.push({ fn, ms }),
    clearTimeout: () => {},
  });
  const events: LiveEvent[] = [];
  const statuses: string[] = [];
  let resyncs = 0;
  stream.onEvent = (e) => events.push(e);
  stream.onStatus = (s) => statuses.push(s);
  stream.onResync = () => (resyncs += 1);
  return { stream, sources, timers, events, statuses, resyncs: () => resyncs };
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('LiveStream', () => {
  it('opens with a fresh ticket, never a token, and reports live', async () => {
    const h = harness();
    h.stream.start();
    await flush();
    expect(h.sources).toHaveLength(1);
    expect(h.sources[0].url).toBe('/api/v1/events?ticket=t1');
    h.sources[0].onopen?.(new Event('open'));
    expect(h.statuses).toEqual(['connecting', 'live']);
    h.sources[0].emit('traffic', { service: 'web', deployment_id: 'd1', canary_weight: 10 }, '77-3');
    expect(h.events).toEqual([
      { type: 'traffic', service: 'web', deployment_id: 'd1', data: { service: 'web', deployment_id: 'd1', canary_weight: 10 } },
    ]);
    expect(h.stream.lastEventId).toBe('77-3');
  });

  it('reconnects by itself with a new ticket and the last event id, backing off', async () => {
    const h = harness();
    h.stream.start();
    await flush();
    h.sources[0].onopen?.(new Event('open'));
    h.sources[0].emit('analysis', { service: 'web' }, '77-9');
    h.sources[0].onerror?.(new Event('error'));
    expect(h.sources[0].closed).toBe(true);
    expect(h.stream.status).toBe('reconnecting');
    expect(h.timers.map((t) => t.ms)).toEqual([FIRST_RETRY_MS]);
    h.timers[0].fn();
    await flush();
    expect(h.sources[1].url).toBe('/api/v1/events?ticket=t2&last_event_id=77-9');
    // A second failure before it opened waits twice as long.
    h.sources[1].onerror?.(new Event('error'));
    expect(h.timers.map((t) => t.ms)).toEqual([FIRST_RETRY_MS, FIRST_RETRY_MS * 2]);
  });

  it('closes the stream while hidden and resumes where it left off', async () => {
    const h = harness();
    h.stream.start();
    await flush();
    h.sources[0].onopen?.(new Event('open'));
    h.sources[0].emit('transition', { service: 'web' }, '77-4');
    h.stream.setHidden(true);
    expect(h.sources[0].closed).toBe(true);
    expect(h.stream.status).toBe('paused');
    // Events from the closed source are ignored.
    h.sources[0].emit('transition', { service: 'web' }, '77-5');
    expect(h.events).toHaveLength(1);
    h.stream.setHidden(false);
    await flush();
    expect(h.sources[1].url).toContain('last_event_id=77-4');
  });

  it('asks for a reload on resync and lagged', async () => {
    const h = harness();
    h.stream.start();
    await flush();
    h.sources[0].emit('resync', {});
    h.sources[0].emit('lagged', 3);
    expect(h.resyncs()).toBe(2);
  });
});

describe('coalescer', () => {
  it('loads a key once more after a burst, never twice at a time', async () => {
    const calls: string[] = [];
    let release: () => void = () => {};
    const load = coalescer(async (key) => {
      calls.push(key);
      await new Promise<void>((resolve) => (release = resolve));
    });
    const first = load('web');
    load('web');
    load('web');
    expect(calls).toEqual(['web']);
    release();
    await flush();
    expect(calls).toEqual(['web', 'web']);
    release();
    await first;
    expect(calls).toEqual(['web', 'web']);
  });
});
