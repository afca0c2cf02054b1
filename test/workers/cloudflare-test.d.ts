/** The part of @cloudflare/vitest-pool-workers' `cloudflare:test` module these tests use (keeps the root tsc free of workers-types). */
declare module 'cloudflare:test' {
  export const SELF: { fetch(input: string | Request, init?: RequestInit): Promise<Response> };
  export const env: Record<string, any>;
}
