/**
 * What every route module of the API is given: the Hono app, the request schemas, the services, and the shared
 * request helpers (scope checks, namespace defaults, image and multipart parsing). app.ts builds it once.
 */
import { z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import type { ManyfoldConfig } from '../../config.js';
import type { VectorIndex } from '../../index/types.js';
import type { ActivationManager } from '../activation.js';
import { requireScope, type ApiKeyEntry, type KeyRing, type Scope } from '../auth.js';
import { ApiError, errorBody, formatPath, type ErrorStatus } from '../errors.js';
import { checkImage, decodeBase64Image, type CheckedImage } from '../images.js';
import type { ApiMetrics } from '../metrics.js';
import type { ProbeManager } from '../probes.js';
import type { ModelRegistry } from '../registry.js';
import { ErrorSchema, type buildSchemas } from '../schemas.js';
import type { RetrievalService } from '../service.js';
import type { Store } from '../store.js';

export type Env = { Variables: { requestId: string; key?: ApiKeyEntry; route?: string } };

export type Fail = (c: Context<Env>, status: ErrorStatus, code: string, message: string, field?: string, headers?: Record<string, string>) => Response;

export interface RouteContext {
  app: OpenAPIHono<Env>;
  S: ReturnType<typeof buildSchemas>;
  config: ManyfoldConfig;
  service: RetrievalService;
  registry: ModelRegistry;
  index: VectorIndex;
  store: Store;
  activation: ActivationManager;
  probes: ProbeManager;
  keyring: KeyRing;
  metrics: ApiMetrics;
  fail: Fail;
  /** scope check inside a handler */
  scope: (c: Context<Env>, ...s: Scope[]) => void;
  /** scope check as route middleware: runs before the body is validated (403 before 422) */
  needs: (...s: Scope[]) => MiddlewareHandler<Env>;
  /** a request's namespace, or the configured default */
  ns: (n: string | undefined) => string;
  errResponses: Record<number, { content: { 'application/json': { schema: typeof ErrorSchema } }; description: string }>;
  security: { bearer: string[] }[];
  image: (b64: string, field: string) => Promise<CheckedImage>;
  fileImage: (v: unknown, field: string) => Promise<CheckedImage>;
  jsonField: (v: unknown, field: string) => unknown;
  parseWith: <T>(schema: z.ZodType<T>, value: unknown) => T;
}

export const IdParam = z.object({ id: z.string().min(1).max(256).openapi({ param: { name: 'id', in: 'path' } }) });

export function failWith(): Fail {
  return (c, status, code, message, field, headers) => {
    if (headers) for (const [k, v] of Object.entries(headers)) c.header(k, v);
    return c.json(errorBody(code, message, field, c.get('requestId')), status);
  };
}

/** the request helpers of RouteContext that depend only on the service's limits and the config */
export function requestHelpers(config: ManyfoldConfig, service: RetrievalService) {
  const limits = config.limits;
  return {
    scope: (c: Context<Env>, ...s: Scope[]) => requireScope(c.get('key')!, ...s),
    needs:
      (...s: Scope[]): MiddlewareHandler<Env> =>
      async (c, next) => {
        requireScope(c.get('key')!, ...s);
        await next();
      },
    ns: (n: string | undefined) => n ?? config.server.defaultNamespace,
    errResponses: Object.fromEntries(
      ([400, 401, 403, 404, 409, 413, 415, 422, 429] as const).map((s) => [s, { content: { 'application/json': { schema: ErrorSchema } }, description: 'error' }]),
    ),
    security: [{ bearer: [] as string[] }],
    image: async (b64: string, field: string): Promise<CheckedImage> => checkImage(decodeBase64Image(b64, field, service.limits), field, service.limits),
    fileImage: async (v: unknown, field: string): Promise<CheckedImage> => {
      if (!(v instanceof File)) throw new ApiError(422, 'validation_error', `${field}: expected a file part`, field);
      if (v.size > limits.maxImageBytes) throw new ApiError(413, 'image_too_large', `image exceeds ${limits.maxImageBytes} bytes`, field);
      return checkImage(Buffer.from(await v.arrayBuffer()), field, service.limits);
    },
    jsonField: (v: unknown, field: string): unknown => {
      if (v === undefined) return undefined;
      if (typeof v !== 'string') throw new ApiError(422, 'validation_error', `${field}: expected a JSON string`, field);
      try {
        return JSON.parse(v);
      } catch {
        throw new ApiError(400, 'invalid_json', `${field} is not valid JSON`, field);
      }
    },
    parseWith: <T>(schema: z.ZodType<T>, value: unknown): T => {
      const r = schema.safeParse(value);
      if (!r.success) {
        const issue = r.error.issues[0];
        const field = formatPath(issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path);
        throw new ApiError(422, 'validation_error', field ? `${field}: ${issue.message}` : issue.message, field || undefined);
      }
      return r.data;
    },
  };
}
