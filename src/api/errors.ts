/**
 * The API's one error shape: `{"error": {"code", "message", "field"?}}` with an HTTP status. Handlers throw
 * ApiError; app.onError turns it (and IndexError, HTTPException, anything else) into that JSON. No stack trace
 * ever reaches a client: unexpected errors answer 500 `internal` with the request id to quote.
 */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

export class ApiError extends Error {
  constructor(
    readonly status: ErrorStatus,
    readonly code: string,
    message: string,
    readonly field?: string,
    /** extra response headers (Retry-After, WWW-Authenticate) */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ErrorBody {
  error: { code: string; message: string; field?: string; requestId?: string };
}

export function errorBody(code: string, message: string, field?: string, requestId?: string): ErrorBody {
  return { error: { code, message, ...(field !== undefined ? { field } : {}), ...(requestId ? { requestId } : {}) } };
}

/** zod issue path -> `items[0].image` */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}
