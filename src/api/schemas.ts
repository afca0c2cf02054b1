/**
 * Request and response schemas. The same zod objects validate requests (through @hono/zod-openapi's route
 * validators) and generate /openapi.json. Limits come from the config, so the schemas are built per app.
 * Every object is strict: an unknown field is a 422 naming that field.
 */
import { z } from '@hono/zod-openapi';
import type { LimitsConfig } from '../config.js';
import { PROBE_ATTACK_NAMES, probeAttackSpecShape, refineProbeAttackKnobs } from '../eval/robust/catalog.js';

export const USER_NAMESPACE = /^[A-Za-z0-9][A-Za-z0-9_.]{0,31}$/;
export const METADATA_KEY = /^[A-Za-z0-9.-][A-Za-z0-9_.-]{0,63}$/;
// eslint-disable-next-line no-control-regex
const NO_CONTROL = /^[^\u0000-\u001f\u007f]+$/;

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'validation_error' }),
      message: z.string(),
      field: z.string().optional().openapi({ example: 'items[0].image' }),
      requestId: z.string().optional(),
    }),
  })
  .openapi('Error');

export function buildSchemas(limits: LimitsConfig) {
  const Text = z.string().min(1, 'must not be empty').max(limits.maxTextChars, `at most ${limits.maxTextChars} characters`);
  const Base64Image = z
    .string()
    .min(1) // the size limit is checked on the decoded length (413 image_too_large), the body limit caps the rest
    .openapi({ description: 'image bytes (PNG, JPEG, WebP, GIF, TIFF, AVIF) as base64 or a data: URL; never a URL to fetch', format: 'byte' });
  const Namespace = z
    .string()
    .regex(USER_NAMESPACE, 'namespace: 1-32 characters from [A-Za-z0-9_.], starting with a letter or digit')
    .openapi({ example: 'default' });
  const ItemId = z.string().min(1).max(256).regex(NO_CONTROL, 'ids may not contain control characters').openapi({ example: 'img-1' });
  const MetadataValue = z.union([z.string().max(1000), z.number(), z.boolean(), z.array(z.string().max(200)).max(64)]);
  const MetadataRecord = z
    .record(
      z
        .string()
        .regex(METADATA_KEY, 'metadata keys: 1-64 characters from [A-Za-z0-9_.-], not starting with "_"')
        .refine((k) => k !== 'constructor' && k !== 'prototype', 'reserved key'),
      MetadataValue,
    )
    .refine((m) => Object.keys(m).length <= 32, 'at most 32 metadata keys');
  // zod's record silently drops an own "__proto__" key (JSON.parse makes one from '{"__proto__": ...}'), so it
  // would pass as if absent: refuse it like any other "_" key, before the record sees it
  const Metadata = z
    .preprocess((v, ctx) => {
      if (v !== null && typeof v === 'object' && Object.hasOwn(v, '__proto__')) {
        ctx.addIssue({ code: 'custom', message: 'metadata keys: 1-64 characters from [A-Za-z0-9_.-], not starting with "_"', path: ['__proto__'] });
      }
      return v;
    }, MetadataRecord)
    .openapi({ example: { split: 'test', tags: ['dog'] } });

  const ItemInput = z
    .strictObject({
      id: ItemId,
      image: Base64Image.optional(),
      captions: z.array(Text).max(limits.maxCaptionsPerItem).optional(),
      metadata: Metadata.optional(),
    })
    .refine((it) => it.image !== undefined || (it.captions?.length ?? 0) > 0, { message: 'an item needs an image or at least one caption', path: ['captions'] })
    .openapi('ItemInput');

  const UpsertRequest = z
    .strictObject({
      items: z.array(ItemInput).min(1).max(limits.maxItemsPerRequest),
      namespace: Namespace.optional(),
    })
    .openapi('UpsertRequest');

  const UpsertMultipart = z
    .object({
      id: ItemId,
      image: z.any().optional().openapi({ type: 'string', format: 'binary' }),
      captions: z.union([z.string(), z.array(z.string())]).optional().openapi({ description: 'repeat the field for several captions' }),
      metadata: z.string().optional().openapi({ description: 'JSON object' }),
      namespace: z.string().optional(),
    })
    .openapi('UpsertMultipart');

  const UpsertResponse = z
    .object({
      namespace: z.string(),
      model: z.string(),
      items: z.array(z.object({ id: z.string(), status: z.enum(['created', 'updated', 'unchanged']), image: z.boolean(), captions: z.number() })),
    })
    .openapi('UpsertResponse');

  const Filter = z
    .record(z.string(), z.unknown())
    .openapi({ description: 'Pinecone-style metadata filter: $eq $ne $in $nin $gt $gte $lt $lte $exists $and $or', example: { split: 'test' } });

  const SearchRequest = z
    .strictObject({
      text: Text.optional(),
      image: Base64Image.optional(),
      target: z.enum(['images', 'texts']).optional().openapi({ description: 'default: images for a text query, texts for an image query' }),
      topK: z.number().int().min(1).max(limits.maxTopK).default(10),
      filter: Filter.optional(),
      namespace: Namespace.optional(),
    })
    .refine((b) => (b.text === undefined) !== (b.image === undefined), { message: 'give exactly one of text or image', path: ['text'] })
    .openapi('SearchRequest');

  const SearchMultipart = z
    .object({
      image: z.any().openapi({ type: 'string', format: 'binary' }),
      target: z.string().optional(),
      topK: z.string().optional(),
      filter: z.string().optional().openapi({ description: 'JSON object' }),
      namespace: z.string().optional(),
    })
    .openapi('SearchMultipart');

  const SearchResponse = z
    .object({
      results: z.array(
        z.object({
          id: z.string(),
          score: z.number(),
          metadata: z.record(z.string(), z.unknown()),
          captionIndex: z.number().optional(),
          caption: z.string().optional(),
        }),
      ),
      model: z.string(),
      namespace: z.string(),
      target: z.enum(['images', 'texts']),
      tookMs: z.number(),
    })
    .openapi('SearchResponse');

  const EmbedRequest = z
    .strictObject({
      texts: z.array(Text).min(1).max(64).optional(),
      images: z.array(Base64Image).min(1).max(16).optional(),
    })
    .refine((b) => b.texts !== undefined || b.images !== undefined, { message: 'give texts and/or images', path: ['texts'] })
    .openapi('EmbedRequest');

  // texts / images / inputIds are `manyfold embed`'s text_embeds / image_embeds / input_ids (same numbers, same order)
  const EmbedResponse = z
    .object({
      model: z.string(),
      dim: z.number(),
      texts: z.array(z.array(z.number())).optional(),
      images: z.array(z.array(z.number())).optional(),
      inputIds: z.array(z.array(z.number().int())).optional().openapi({ description: "token ids per text, with the tokenizer's start and end tokens, no padding" }),
    })
    .openapi('EmbedResponse');

  const Model = z
    .object({
      id: z.string(),
      active: z.boolean(),
      previous: z.boolean(),
      preset: z.string(),
      embedDim: z.number(),
      imageSize: z.number(),
      created: z.string(),
      namespaceTag: z.string(),
      training: z.record(z.string(), z.unknown()),
      metrics: z.record(z.string(), z.unknown()),
    })
    .openapi('Model');

  const Job = z
    .object({
      id: z.string(),
      kind: z.literal('activation'),
      model: z.string(),
      from: z.string().optional(),
      status: z.enum(['running', 'succeeded', 'failed', 'rolled-back']),
      progress: z.object({ done: z.number(), total: z.number() }),
      verification: z.unknown().optional(),
      verificationWait: z
        .object({ polls: z.number().int(), waitedMs: z.number() })
        .optional()
        .openapi({ description: "how long activation waited for the index's counts to match the stored items (Pinecone's stats lag writes)" }),
      error: z.string().optional(),
      createdAt: z.string(),
      updatedAt: z.string(),
    })
    .openapi('ActivationJob');

  // the probe catalogue's one spec schema (src/eval/robust/catalog.ts): names, /255 budgets, which knobs apply
  const AttackSpec = z.strictObject(probeAttackSpecShape).superRefine(refineProbeAttackKnobs).openapi('AttackSpec', {
    description: `one attack of a probe: ${PROBE_ATTACK_NAMES.join(', ')} (transfer-* need a surrogate: manyfold probe --target only); budgets in /255 units`,
  });

  const ProbeRequest = z
    .strictObject({
      namespace: Namespace.optional(),
      sample: z
        .number()
        .int()
        .min(1)
        .max(limits.maxProbeSample)
        .optional()
        .openapi({ description: 'items sampled from the namespace (items with an image and captions), searched in the production index read-only; default 8' }),
      halfWidth: z
        .number()
        .min(1)
        .max(50)
        .optional()
        .openapi({
          description:
            'instead of sample: the 95% interval half-width wanted on R@K, in points; samples ceil(1.96^2 * 0.25 / (halfWidth/100)^2) items (the worst case p = 0.5; 385 for 5 points), at most the namespace holds',
        }),
      pairs: z
        .array(z.strictObject({ image: Base64Image, captions: z.array(Text).min(1).max(8) }))
        .min(1)
        .max(limits.maxProbeQueries)
        .optional()
        .openapi({ description: 'supplied query pairs instead of sampled items: indexed into a scratch namespace for the probe and dropped after' }),
      attacks: z.array(AttackSpec).min(1).max(8).optional(),
      k: z.number().int().min(1).max(10).default(1).openapi({ description: 'attack goal: the gold leaves the top-k' }),
      seed: z.number().int().min(0).max(2 ** 31 - 1).default(0),
      resamples: z.number().int().min(100).max(10_000).default(1000),
    })
    .refine((p) => !(p.sample !== undefined && p.pairs !== undefined), { message: 'give sample or pairs, not both', path: ['pairs'] })
    .refine((p) => !(p.halfWidth !== undefined && (p.sample !== undefined || p.pairs !== undefined)), { message: 'halfWidth chooses the sample size: give it without sample or pairs', path: ['halfWidth'] })
    .openapi('ProbeRequest');

  const Probe = z
    .object({
      id: z.string(),
      status: z.enum(['queued', 'running', 'succeeded', 'failed', 'canceled']),
      progress: z.object({ done: z.number(), total: z.number(), stage: z.string(), etaSeconds: z.number().optional() }),
      createdAt: z.string(),
      updatedAt: z.string(),
      request: z.unknown(),
      report: z.unknown().optional(),
      error: z.string().optional(),
    })
    .openapi('Probe');

  return {
    Text,
    Namespace,
    ItemId,
    Metadata,
    ItemInput,
    UpsertRequest,
    UpsertMultipart,
    UpsertResponse,
    SearchRequest,
    SearchMultipart,
    SearchResponse,
    EmbedRequest,
    EmbedResponse,
    Model,
    Job,
    AttackSpec,
    ProbeRequest,
    Probe,
  };
}

export type Schemas = ReturnType<typeof buildSchemas>;
export type ProbeRequestBody = z.infer<Schemas['ProbeRequest']>;
export type AttackSpecBody = z.infer<Schemas['AttackSpec']>;
