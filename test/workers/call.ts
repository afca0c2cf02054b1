/** A JSON call to the Worker under test (workerd, through cloudflare:test's SELF), as a client with `key` makes it. */
import { SELF } from 'cloudflare:test';

export async function call(method: string, path: string, key: string, json?: unknown): Promise<{ status: number; body: any }> {
  const r = await SELF.fetch(`https://manyfold.test${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
  });
  return { status: r.status, body: await r.json() };
}
