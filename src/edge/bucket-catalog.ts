/**
 * The model catalogue of a bucket (S3, R2): which published artifacts a deployment can serve.
 *
 *   <prefix>/<id>/manifest.json, tokenizer.json, weights-*.bin   one artifact per model id (the content id), written
 *                                                                once and never overwritten (src/publish)
 *   <prefix>/catalog.json                                         this file, written last by every publish
 *
 * The catalogue is one object, replaced in one PUT, so a reader sees either the old or the new list; a model is
 * listed only after all of its files were uploaded and verified. Each entry pins the sha256 of the artifact's
 * manifest, and the manifest pins every file's sha256, so a reader verifies the whole chain from here.
 * Runtime-neutral (no node: imports): the Worker reads it through its R2 binding, Lambda through S3.
 */
import { z } from 'zod';
import { ArtifactError, MANIFEST_FILE } from '../model/artifact.js';
import { formatZodIssues } from '../util/zod.js';
import { sha256Hex } from './artifact.js';
import type { BucketLike } from './bucket.js';
import type { EdgeModelSource, EdgeModelSources } from './registry.js';

export const CATALOG_FORMAT = 'manyfold-catalog/1';
export const CATALOG_FILE = 'catalog.json';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');
const modelId = z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a URL/path safe model id');

export const catalogEntrySchema = z
  .object({
    id: modelId,
    /** the manifest object's size and sha256: what a reader must find at <prefix>/<id>/manifest.json */
    manifest: z.object({ bytes: z.number().int().positive(), sha256 }).strict(),
    files: z.number().int().nonnegative(),
    /** total bytes of the listed artifact files (manifest excluded) */
    bytes: z.number().int().nonnegative(),
    preset: z.string(),
    embedDim: z.number().int().positive(),
    created: z.string(),
    published: z.iso.datetime(),
  })
  .strict();

export const catalogSchema = z
  .object({
    format: z.literal(CATALOG_FORMAT),
    updated: z.iso.datetime(),
    /** the model a fresh deployment serves before any activation (blue/green state decides afterwards) */
    default: modelId.optional(),
    models: z.array(catalogEntrySchema),
  })
  .strict()
  .superRefine((c, ctx) => {
    const ids = new Set<string>();
    c.models.forEach((m, i) => {
      if (ids.has(m.id)) ctx.addIssue({ code: 'custom', path: ['models', i, 'id'], message: `duplicate model ${m.id}` });
      ids.add(m.id);
    });
    if (c.default !== undefined && !ids.has(c.default)) ctx.addIssue({ code: 'custom', path: ['default'], message: `${c.default} is not in models` });
  });

export type Catalog = z.infer<typeof catalogSchema>;
export type CatalogEntry = z.infer<typeof catalogEntrySchema>;

/** '' or 'a/b' (no leading / trailing slash) */
export function normalizePrefix(prefix: string): string {
  return prefix.replace(/^\/+|\/+$/g, '');
}

export function catalogKey(prefix: string): string {
  const p = normalizePrefix(prefix);
  return p ? `${p}/${CATALOG_FILE}` : CATALOG_FILE;
}

export function artifactKey(prefix: string, id: string, file: string): string {
  const p = normalizePrefix(prefix);
  return p ? `${p}/${id}/${file}` : `${id}/${file}`;
}

/** Parse catalogue text; `where` names the object in the error (e.g. s3://bucket/models/catalog.json). */
export function parseCatalog(text: string, where: string): Catalog {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where} is not JSON: ${(e as Error).message}`);
  }
  const r = catalogSchema.safeParse(json);
  if (!r.success) throw new Error(`${where} is not a valid model catalogue: ${formatZodIssues(r.error)}`);
  return r.data;
}

/** The catalogue, or undefined when the bucket has none yet (nothing published under that prefix). */
export async function readCatalog(bucket: BucketLike, prefix: string, label: string): Promise<Catalog | undefined> {
  const key = catalogKey(prefix);
  const o = await bucket.get(key);
  return o ? parseCatalog(await o.text(), `${label}/${key}`) : undefined;
}

/**
 * One model source per catalogue entry (the default first), reading the artifact's objects from the bucket; the
 * manifest is checked against the digest the catalogue pins before it is parsed. `only` (e.g. Lambda's MODEL_IDS)
 * keeps those ids in that order, the first becoming the default; an id the catalogue lacks is an error.
 */
export function catalogSources(catalog: Catalog, bucket: BucketLike, prefix: string, label: string, only?: readonly string[]): EdgeModelSource[] {
  const byId = new Map(catalog.models.map((m) => [m.id, m]));
  let entries: CatalogEntry[];
  if (only?.length) {
    const missing = only.filter((id) => !byId.has(id));
    if (missing.length) throw new Error(`${label}/${catalogKey(prefix)} does not list ${missing.join(', ')} (it lists ${catalog.models.map((m) => m.id).join(', ') || 'no model'})`);
    entries = only.map((id) => byId.get(id)!);
  } else {
    const first = catalog.default ? byId.get(catalog.default) : undefined;
    entries = first ? [first, ...catalog.models.filter((m) => m !== first)] : catalog.models;
  }
  return entries.map((entry) => ({
    name: `${label}/${artifactKey(prefix, entry.id, '')}`,
    read: async (file: string) => {
      const key = artifactKey(prefix, entry.id, file);
      const o = await bucket.get(key);
      if (!o) throw new ArtifactError(`${label}/${key} not found (listed in ${label}/${catalogKey(prefix)})`, file);
      const bytes = new Uint8Array(await o.arrayBuffer());
      if (file === MANIFEST_FILE) {
        const got = await sha256Hex(bytes);
        if (bytes.length !== entry.manifest.bytes || got !== entry.manifest.sha256) {
          throw new ArtifactError(`${label}/${key} does not match the catalogue (sha256 ${got}, catalogue says ${entry.manifest.sha256})`, file);
        }
      }
      return bytes;
    },
  }));
}

/** A discovery function for SourceCatalogue: re-reads the catalogue at every scan (boot, activation). */
export function discoverFromCatalog(bucket: BucketLike, prefix: string, label: string, opts: { only?: readonly string[]; required?: boolean } = {}): () => Promise<EdgeModelSource[]> {
  return async () => {
    const catalog = await readCatalog(bucket, prefix, label);
    if (!catalog) {
      if (opts.required) throw new Error(`no model catalogue at ${label}/${catalogKey(prefix)}: publish a model first (manyfold publish <artifact> --to ...)`);
      return [];
    }
    return catalogSources(catalog, bucket, prefix, label, opts.only);
  };
}

/** The Worker's discovery: the bound bucket's catalogue first (its default leads), then fixed sources (bundled assets). */
export function catalogThen(bucket: BucketLike | undefined, prefix: string, label: string, fixed: EdgeModelSource[]): EdgeModelSources {
  if (!bucket) return fixed;
  const discover = discoverFromCatalog(bucket, prefix, label);
  return async () => [...(await discover()), ...fixed];
}
