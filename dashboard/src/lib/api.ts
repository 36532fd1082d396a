// The REST client: every call carries the session's bearer token in a header
// (never in a URL); problems (RFC 9457) become ApiError with the server's words.

import type { Problem } from './types';

const TOKEN_KEY = 'rampart.token';

/** Where the token lives: sessionStorage, so it is gone when the tab closes. */
export interface TokenStore {
  get(): string | null;
  set(token: string): void;
  clear(): void;
}

export function sessionTokenStore(storage: Storage = sessionStorage): TokenStore {
  return {
    get: () => storage.getItem(TOKEN_KEY),
    set: (token) => storage.setItem(TOKEN_KEY, token),
    clear: () => storage.removeItem(TOKEN_KEY),
  };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Fetch = typeof fetch;

export class Api {
  /** Called when the server says the token is no longer good (401). */
  onUnauthorized: () => void = () => {};

  constructor(
    readonly tokens: TokenStore,
    private readonly fetcher: Fetch = (...args) => fetch(...args),
  ) {}

  async request<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
    const bearer = token ?? this.tokens.get();
    const headers: Record<string, string> = { accept: 'application/json' };
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await this.fetcher(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
    const text = await response.text();
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const problem = JSON.parse(text) as Problem;
        message = problem.detail ?? problem.title ?? message;
      } catch {
        // Not a problem document: keep the status line.
      }
      if (response.status === 401 && token === undefined) this.onUnauthorized();
      throw new ApiError(response.status, message);
    }
    return (text ? JSON.parse(text) : null) as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
}

/** Encodes one path segment (service names, ids). */
export const seg = (value: string) => encodeURIComponent(value);
