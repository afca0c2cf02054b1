/**
 * target.json: how to query a retrieval system under test over HTTP (docs/probe-targets.md).
 *
 * The file holds no secrets: url and header values may reference `${NAME}`, filled from the environment when
 * the file is loaded. Interpolation happens only there, never in request bodies, so a query text or an image
 * can never pull an environment variable into a request. Every check that can be made before the first request
 * is made here (placeholders, methods, paths, URLs after interpolation), so a misconfigured target fails at load
 * time with the file and field named instead of after the probe has spent queries.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { formatZodIssues } from '../../util/zod.js';

/** A load or validation error; the message starts with the file (or `where`) and names the field. */
export class TargetSpecError extends Error {
  constructor(
    message: string,
    readonly where: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'TargetSpecError';
  }
}

export const TEXT_PLACEHOLDERS = ['text', 'topK'] as const;
export const IMAGE_PLACEHOLDERS = ['imageBase64', 'imageMime', 'topK'] as const;
const PLACEHOLDER = /\{\{([^{}]*)\}\}/g;
const ENV_REFERENCE = /\$\{([^}]*)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// RFC 9110 token characters: fetch rejects anything else, better to say so at load time with the field named
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// `$` is the value itself (a response that is a bare array, a hit that is a bare id); otherwise dotted segments
const RESPONSE_PATH = /^(\$|(\$\.)?[^.]+(\.[^.]+)*)$/;

const httpMethod = z.enum(['GET', 'POST', 'PUT']);
const bodyMethod = z.enum(['POST', 'PUT']);
const headers = z.record(z.string().regex(HEADER_NAME, 'not a valid HTTP header name'), z.string());
const queryParams = z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean()]));
const responsePath = z.string().regex(RESPONSE_PATH, 'a dotted path such as "data.hits" or "hits.0.id", or "$" for the value itself');

const responseSchema = z.strictObject({
  /** path to the array of hits, best first */
  results: responsePath,
  /** path to a hit's id inside one element of `results` (string or number) */
  id: responsePath,
  /** path to a hit's score; absent: the target is rank-only */
  score: responsePath.optional(),
  /** 'lower-better' for distances: the client negates them so a higher score is always better */
  scoreOrder: z.enum(['higher-better', 'lower-better']).default('higher-better'),
});

/** url / method / headers / query / response a modality may set for itself; headers merge over request.headers */
const routeOverrides = {
  url: z.string().min(1).optional(),
  headers: headers.optional(),
  query: queryParams.optional(),
  response: responseSchema.optional(),
};

const textSchema = z.strictObject({
  ...routeOverrides,
  method: httpMethod.optional(),
  /** JSON body template (POST / PUT); absent for GET, where the text goes in `query` */
  body: z.json().optional(),
});

const imageSchema = z.discriminatedUnion('encoding', [
  z.strictObject({
    ...routeOverrides,
    method: bodyMethod.optional(),
    /** JSON body with the image as base64 (`{{imageBase64}}`, optionally inside a data URL) */
    encoding: z.literal('json'),
    body: z.json(),
  }),
  z.strictObject({
    ...routeOverrides,
    method: bodyMethod.optional(),
    /** multipart/form-data: the image as a file part named `field`, plus text parts `fields` */
    encoding: z.literal('multipart'),
    field: z.string().min(1).default('image'),
    /** file name sent with the part (default query.png / query.jpg by the image's type) */
    filename: z.string().min(1).optional(),
    fields: queryParams.default({}),
  }),
  z.strictObject({
    ...routeOverrides,
    method: bodyMethod.optional(),
    /** the encoded image bytes as the whole body, Content-Type image/png or image/jpeg */
    encoding: z.literal('binary'),
  }),
]);

const limitsSchema = z
  .strictObject({
    /** requests per second over all calls (token bucket); absent: no rate limit */
    ratePerSecond: z.number().positive().max(100_000).optional(),
    /** requests the bucket lets through back to back after an idle spell */
    burst: z.number().int().min(1).max(10_000).default(1),
    /** requests in flight at once */
    concurrency: z.number().int().min(1).max(1_024).default(1),
    /** retries of one query after a 429, a 5xx, a timeout or a network error (attempts = retries + 1) */
    retries: z.number().int().min(0).max(20).default(3),
    /** first backoff; doubles per retry */
    backoffMs: z.number().int().min(0).max(600_000).default(250),
    /** no wait between attempts is longer, Retry-After included */
    maxBackoffMs: z.number().int().min(0).max(600_000).default(8_000),
    /** HTTP requests the client may send in its lifetime, retries included; absent: unlimited */
    maxQueries: z.number().int().min(1).optional(),
  })
  .refine((l) => l.maxBackoffMs >= l.backoffMs, { message: 'must be at least limits.backoffMs', path: ['maxBackoffMs'] });

const rawTargetSpecSchema = z.strictObject({
  /** shown in reports */
  name: z.string().min(1),
  request: z.strictObject({
    url: z.string().min(1),
    method: httpMethod.default('POST'),
    headers: headers.default({}),
    /** per attempt, from sending the request to reading the whole body */
    timeoutMs: z.number().int().min(1).max(600_000).default(10_000),
  }),
  text: textSchema.optional(),
  image: imageSchema.optional(),
  response: responseSchema,
  limits: limitsSchema.prefault({}),
});

type RawSpec = z.infer<typeof rawTargetSpecSchema>;
type Json = z.infer<ReturnType<typeof z.json>>;

/** every `{{name}}` in a template with the path where it occurs */
function placeholdersIn(value: Json | undefined, path: (string | number)[], out: { name: string; path: (string | number)[] }[] = []) {
  if (typeof value === 'string') {
    for (const m of value.matchAll(PLACEHOLDER)) out.push({ name: m[1], path });
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => placeholdersIn(v, [...path, i], out));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) placeholdersIn(v, [...path, k], out);
  }
  return out;
}

function hasHeader(h: Record<string, string> | undefined, name: string): boolean {
  return Object.keys(h ?? {}).some((k) => k.toLowerCase() === name);
}

/** checks that span fields: the placeholders each template may use, methods against bodies, header clashes */
function checkTemplates(spec: RawSpec, ctx: z.RefinementCtx<RawSpec>) {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  if (!spec.text && !spec.image) issue([], 'give at least one of "text" or "image" (the query kinds the target accepts)');

  if (spec.text) {
    const t = spec.text;
    const method = t.method ?? spec.request.method;
    if (method === 'GET' && t.body !== undefined) issue(['text', 'body'], 'a GET request has no body: put the text in "text.query"');
    if (method !== 'GET' && t.body === undefined) issue(['text', 'body'], `a ${method} request needs a body template`);
    const used = [...placeholdersIn(t.body, ['text', 'body']), ...placeholdersIn(t.query ?? {}, ['text', 'query'])];
    for (const u of used) {
      if (!(TEXT_PLACEHOLDERS as readonly string[]).includes(u.name)) {
        issue(u.path, `unknown placeholder {{${u.name}}} in a text template (allowed: ${TEXT_PLACEHOLDERS.map((n) => `{{${n}}}`).join(', ')})`);
      }
    }
    if (!used.some((u) => u.name === 'text')) issue(method === 'GET' ? ['text', 'query'] : ['text', 'body'], 'the text template never uses {{text}}: the query would not be sent');
  }

  if (spec.image) {
    const im = spec.image;
    if (!im.method && spec.request.method === 'GET') issue(['image', 'method'], 'images cannot be sent with GET (request.method): set image.method to POST or PUT');
    const used = placeholdersIn(im.query ?? {}, ['image', 'query']);
    if (im.encoding === 'json') used.push(...placeholdersIn(im.body, ['image', 'body']));
    if (im.encoding === 'multipart') used.push(...placeholdersIn(im.fields, ['image', 'fields']));
    for (const u of used) {
      if (!(IMAGE_PLACEHOLDERS as readonly string[]).includes(u.name)) {
        issue(u.path, `unknown placeholder {{${u.name}}} in an image template (allowed: ${IMAGE_PLACEHOLDERS.map((n) => `{{${n}}}`).join(', ')})`);
      }
    }
    if (im.encoding === 'json' && !used.some((u) => u.name === 'imageBase64')) {
      issue(['image', 'body'], 'the JSON image template never uses {{imageBase64}}: the image would not be sent');
    }
    if (im.encoding === 'multipart' && Object.hasOwn(im.fields, im.field)) {
      issue(['image', 'fields', im.field], `clashes with the file part "${im.field}" (image.field)`);
    }
    // fetch writes the multipart boundary / the image type into Content-Type; a fixed header would break it
    if (im.encoding !== 'json') {
      if (hasHeader(im.headers, 'content-type')) issue(['image', 'headers'], `no Content-Type header with encoding "${im.encoding}": it is set from the body`);
      else if (hasHeader(spec.request.headers, 'content-type')) issue(['request', 'headers'], `no Content-Type header with image encoding "${im.encoding}": it is set from the body (move it to text.headers)`);
    }
  }
}

export const targetSpecSchema = rawTargetSpecSchema.superRefine(checkTemplates);
export type TargetSpec = z.infer<typeof targetSpecSchema>;
export type TargetResponseSpec = z.infer<typeof responseSchema>;
export type TargetLimits = TargetSpec['limits'];

/** the url templates (before interpolation) of a parsed spec, for redactedSpec and error messages */
const urlTemplates = new WeakMap<TargetSpec, { request: string; text?: string; image?: string }>();

function interpolate(template: string, env: NodeJS.ProcessEnv, where: string, field: string): string {
  return template.replace(ENV_REFERENCE, (_, name: string) => {
    if (!ENV_NAME.test(name)) throw new TargetSpecError(`${where}: ${field}: \${${name}} is not a valid environment variable reference (use \${NAME})`, where, field);
    const value = env[name];
    // an unset CI secret expands to "": an empty token is a misconfiguration, not a value
    if (value === undefined || value === '') throw new TargetSpecError(`${where}: ${field}: environment variable ${name} is not set (or empty)`, where, field);
    return value;
  });
}

function checkUrl(url: string, where: string, field: string, template: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TargetSpecError(`${where}: ${field}: not a valid URL: ${JSON.stringify(template)}`, where, field);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TargetSpecError(`${where}: ${field}: only http and https URLs are supported (got ${parsed.protocol})`, where, field);
  }
}

function interpolateHeaders(h: Record<string, string>, env: NodeJS.ProcessEnv, where: string, field: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    const value = interpolate(v, env, where, `${field}.${k}`);
    if (/[\r\n\0]/.test(value)) throw new TargetSpecError(`${where}: ${field}.${k}: header value contains a line break or NUL`, where, `${field}.${k}`);
    out[k] = value;
  }
  return out;
}

/**
 * Validates a parsed target.json and fills `${NAME}` in url and header values from `env` (default process.env).
 * `where` (usually the file name) starts every error message.
 */
export function parseTargetSpec(json: unknown, where: string, env: NodeJS.ProcessEnv = process.env): TargetSpec {
  const r = targetSpecSchema.safeParse(json);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new TargetSpecError(`${where}: invalid target spec: ${formatZodIssues(r.error)}`, where, first?.path.join('.'));
  }
  const raw = r.data;
  const spec: TargetSpec = {
    ...raw,
    request: { ...raw.request, url: interpolate(raw.request.url, env, where, 'request.url'), headers: interpolateHeaders(raw.request.headers, env, where, 'request.headers') },
  };
  checkUrl(spec.request.url, where, 'request.url', raw.request.url);
  const templates: { request: string; text?: string; image?: string } = { request: raw.request.url };
  for (const kind of ['text', 'image'] as const) {
    const section = raw[kind];
    if (!section) continue;
    const copy = { ...section };
    if (section.url !== undefined) {
      copy.url = interpolate(section.url, env, where, `${kind}.url`);
      checkUrl(copy.url, where, `${kind}.url`, section.url);
      templates[kind] = section.url;
    }
    if (section.headers) copy.headers = interpolateHeaders(section.headers, env, where, `${kind}.headers`);
    (spec as Record<string, unknown>)[kind] = copy;
  }
  urlTemplates.set(spec, templates);
  return spec;
}

/** Reads, parses and validates target.json; see parseTargetSpec. */
export async function loadTargetSpec(file: string, env: NodeJS.ProcessEnv = process.env): Promise<TargetSpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new TargetSpecError(`${file}: cannot read the target spec: ${(e as Error).message}`, file);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TargetSpecError(`${file}: not valid JSON: ${(e as Error).message}`, file);
  }
  return parseTargetSpec(json, file, env);
}

const REDACTED = '[redacted]';

/**
 * A URL safe to print: the template as written in the file (`${NAME}` references, not their values) when the
 * spec came from parseTargetSpec; otherwise the URL without user info and with query values redacted, since an
 * interpolated secret may sit in either.
 */
export function displayUrl(spec: TargetSpec, kind: 'request' | 'text' | 'image' = 'request'): string {
  const templates = urlTemplates.get(spec);
  const own = kind === 'request' ? spec.request.url : (spec[kind]?.url ?? spec.request.url);
  const template = kind === 'request' ? templates?.request : spec[kind]?.url !== undefined ? templates?.[kind] : templates?.request;
  if (template !== undefined) return template;
  try {
    const u = new URL(own);
    u.username = '';
    u.password = '';
    for (const key of [...new Set(u.searchParams.keys())]) u.searchParams.set(key, REDACTED);
    return u.href;
  } catch {
    return REDACTED;
  }
}

/** The spec for reports: every header value replaced by "[redacted]", URLs as displayUrl prints them. */
export function redactedSpec(spec: TargetSpec): TargetSpec {
  const hide = (h: Record<string, string> | undefined) => (h ? Object.fromEntries(Object.keys(h).map((k) => [k, REDACTED])) : undefined);
  const out: TargetSpec = { ...spec, request: { ...spec.request, url: displayUrl(spec, 'request'), headers: hide(spec.request.headers)! } };
  if (spec.text) out.text = { ...spec.text, ...(spec.text.url !== undefined ? { url: displayUrl(spec, 'text') } : {}), ...(spec.text.headers ? { headers: hide(spec.text.headers) } : {}) };
  if (spec.image) out.image = { ...spec.image, ...(spec.image.url !== undefined ? { url: displayUrl(spec, 'image') } : {}), ...(spec.image.headers ? { headers: hide(spec.image.headers) } : {}) };
  return out;
}
