/**
 * Metadata filters: a safe subset of Pinecone's filter language, validated with zod into an AST.
 *
 * Accepted syntax (as Pinecone writes it):
 *   { genre: "jazz" }                                  implicit $eq
 *   { year: { $gte: 2000, $lt: 2010 } }                several operators on one field: AND
 *   { genre: "jazz", year: { $gt: 2000 } }             several keys: AND
 *   { $and: [ ... ] }, { $or: [ ... ] }                arrays of 1-64 sub-filters
 * Operators: $eq/$ne (string | number | boolean), $in/$nin (1-10,000 strings or numbers),
 * $gt/$gte/$lt/$lte (number), $exists (boolean). Anything else is rejected: unknown `$` keys, field names
 * outside [A-Za-z0-9_.-]{1,64}, values of the wrong type, arrays given where a scalar is expected, non-finite
 * numbers, nesting deeper than 8 or more than 512 conditions. This is the filter-injection defence: adapters
 * only ever see the AST, and each compiles it itself (memory evaluates it, LanceDB quotes it into SQL,
 * Pinecone re-serialises it into canonical JSON).
 *
 * Semantics (identical in every adapter; `evaluateFilter` is the reference):
 * - Values are typed: 2020 never equals "2020".
 * - On a list field (string[]), $eq x means "the list contains x", $in xs "the list shares an element with xs".
 * - $ne and $nin are exact negations of $eq and $in, so they also match records WITHOUT the field. (Hosted
 *   Pinecone documents $ne/$nin only for present fields; for portable filters add { field: { $exists: true } }.)
 * - $gt/$gte/$lt/$lte match only numeric fields.
 */
import { z } from 'zod';
import { IndexError } from './errors.js';
import type { Metadata } from './types.js';
import { FIELD_PATTERN } from './validate.js';

export type Scalar = string | number | boolean;

export type FilterNode =
  | { kind: 'and'; children: FilterNode[] }
  | { kind: 'or'; children: FilterNode[] }
  | { kind: 'eq' | 'ne'; field: string; value: Scalar }
  | { kind: 'in' | 'nin'; field: string; values: (string | number)[] }
  | { kind: 'gt' | 'gte' | 'lt' | 'lte'; field: string; value: number }
  | { kind: 'exists'; field: string; value: boolean };

export type LeafNode = Exclude<FilterNode, { kind: 'and' | 'or' }>;

export const FILTER_LIMITS = { maxDepth: 8, maxConditions: 512, maxInValues: 10_000, maxLogicalChildren: 64, maxStringLength: 4096 };

const FieldName = z
  .string()
  .regex(FIELD_PATTERN, 'field names must be 1-64 characters from [A-Za-z0-9_.-]')
  .refine((s) => s !== '__proto__' && s !== 'constructor' && s !== 'prototype', 'reserved field name');
const Str = z.string().max(FILTER_LIMITS.maxStringLength);
const Num = z.number(); // zod 4 rejects NaN and +-Infinity
const ScalarSchema = z.union([Str, Num, z.boolean()], {
  error: 'expected a string, finite number or boolean',
});
const InValues = z
  .array(z.union([Str, Num], { error: 'expected a string or finite number' }))
  .min(1, '$in/$nin need at least one value')
  .max(FILTER_LIMITS.maxInValues);
const OperatorsSchema = z
  .strictObject({
    $eq: ScalarSchema.optional(),
    $ne: ScalarSchema.optional(),
    $in: InValues.optional(),
    $nin: InValues.optional(),
    $gt: Num.optional(),
    $gte: Num.optional(),
    $lt: Num.optional(),
    $lte: Num.optional(),
    $exists: z.boolean().optional(),
  })
  .refine((o) => Object.keys(o).length > 0, 'empty operator object');

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

type Ctx = z.RefinementCtx;
function copyIssues(ctx: Ctx, issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[]): void {
  for (const issue of issues) {
    // unrecognized_keys reports the object's path; name the bad key itself
    const extra = issue.code === 'unrecognized_keys' ? [issue.keys[0] ?? ''] : [];
    const msg = issue.code === 'unrecognized_keys' ? `unknown operator ${issue.keys.join(', ')}` : issue.message;
    ctx.addIssue({ code: 'custom', message: msg, path: [...prefix, ...issue.path, ...extra] });
  }
}

const FilterSchema: z.ZodType<FilterNode> = z.lazy(() =>
  z.unknown().transform((input, ctx): FilterNode => {
    if (!isPlainObject(input)) {
      ctx.addIssue({ code: 'custom', message: 'a filter must be a plain object' });
      return z.NEVER;
    }
    const keys = Object.keys(input);
    if (keys.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'a filter must have at least one condition' });
      return z.NEVER;
    }
    const children: FilterNode[] = [];
    for (const key of keys) {
      const value = input[key];
      if (key === '$and' || key === '$or') {
        if (!Array.isArray(value) || value.length === 0 || value.length > FILTER_LIMITS.maxLogicalChildren) {
          ctx.addIssue({
            code: 'custom',
            message: `${key} takes an array of 1-${FILTER_LIMITS.maxLogicalChildren} filters`,
            path: [key],
          });
          continue;
        }
        const subs: FilterNode[] = [];
        value.forEach((sub, i) => {
          const r = FilterSchema.safeParse(sub);
          if (r.success) subs.push(r.data);
          else copyIssues(ctx, r.error.issues, [key, i]);
        });
        children.push({ kind: key === '$and' ? 'and' : 'or', children: subs });
        continue;
      }
      if (key.startsWith('$')) {
        ctx.addIssue({ code: 'custom', message: `unknown logical operator ${key} (only $and and $or)`, path: [key] });
        continue;
      }
      const name = FieldName.safeParse(key);
      if (!name.success) {
        copyIssues(ctx, name.error.issues, [key]);
        continue;
      }
      if (isPlainObject(value)) {
        const ops = OperatorsSchema.safeParse(value);
        if (!ops.success) {
          copyIssues(ctx, ops.error.issues, [key]);
          continue;
        }
        for (const [op, v] of Object.entries(ops.data)) {
          if (v === undefined) continue;
          const kind = op.slice(1) as LeafNode['kind'];
          if (kind === 'in' || kind === 'nin') children.push({ kind, field: key, values: v as (string | number)[] });
          else children.push({ kind, field: key, value: v } as LeafNode);
        }
        continue;
      }
      const scalar = ScalarSchema.safeParse(value);
      if (!scalar.success) {
        const hint = Array.isArray(value) ? ' (use {"$in": [...]} to match one of several values)' : '';
        ctx.addIssue({ code: 'custom', message: `expected a string, finite number, boolean or operator object${hint}`, path: [key] });
        continue;
      }
      children.push({ kind: 'eq', field: key, value: scalar.data });
    }
    return children.length === 1 ? children[0] : { kind: 'and', children };
  }),
);

function formatPath(path: readonly PropertyKey[]): string {
  let out = 'filter';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  return out;
}

function measure(node: FilterNode, depth: number, acc: { conditions: number; inValues: number; depth: number }): void {
  acc.depth = Math.max(acc.depth, depth);
  if (node.kind === 'and' || node.kind === 'or') {
    for (const c of node.children) measure(c, depth + 1, acc);
    return;
  }
  acc.conditions++;
  if (node.kind === 'in' || node.kind === 'nin') acc.inValues += node.values.length;
}

/**
 * Validates a caller's filter and returns its AST; `undefined` in, `undefined` out. Throws `IndexError`
 * (code INVALID_FILTER) whose `field` names the first offending path, e.g. `filter.genre.$regex`.
 */
export function parseFilter(input: unknown): FilterNode | undefined {
  if (input === undefined) return undefined;
  const r = FilterSchema.safeParse(input);
  if (!r.success) {
    const issues = r.error.issues;
    const first = issues[0];
    const detail = issues
      .slice(0, 5)
      .map((i) => `${formatPath(i.path)}: ${i.message}`)
      .join('; ');
    throw new IndexError('INVALID_FILTER', `invalid filter: ${detail}`, { field: formatPath(first?.path ?? []) });
  }
  const acc = { conditions: 0, inValues: 0, depth: 1 };
  measure(r.data, 1, acc);
  if (acc.depth > FILTER_LIMITS.maxDepth) {
    throw new IndexError('INVALID_FILTER', `invalid filter: nested ${acc.depth} levels deep (limit ${FILTER_LIMITS.maxDepth})`, { field: 'filter' });
  }
  if (acc.conditions > FILTER_LIMITS.maxConditions) {
    throw new IndexError('INVALID_FILTER', `invalid filter: ${acc.conditions} conditions (limit ${FILTER_LIMITS.maxConditions})`, { field: 'filter' });
  }
  if (acc.inValues > FILTER_LIMITS.maxInValues) {
    throw new IndexError('INVALID_FILTER', `invalid filter: ${acc.inValues} $in/$nin values in total (limit ${FILTER_LIMITS.maxInValues})`, {
      field: 'filter',
    });
  }
  return r.data;
}

function eqValue(v: unknown, x: Scalar): boolean {
  if (Array.isArray(v)) return typeof x === 'string' && v.includes(x);
  return v === x;
}

function inValues(v: unknown, xs: readonly (string | number)[]): boolean {
  if (Array.isArray(v)) return v.some((e) => xs.includes(e as string));
  return (typeof v === 'string' || typeof v === 'number') && xs.includes(v);
}

/** The reference semantics: does a record with this metadata match? */
export function evaluateFilter(node: FilterNode, metadata: Metadata | undefined): boolean {
  switch (node.kind) {
    case 'and':
      return node.children.every((c) => evaluateFilter(c, metadata));
    case 'or':
      return node.children.some((c) => evaluateFilter(c, metadata));
    default: {
      const v = metadata !== undefined && Object.hasOwn(metadata, node.field) ? metadata[node.field] : undefined;
      switch (node.kind) {
        case 'eq':
          return v !== undefined && eqValue(v, node.value);
        case 'ne':
          return !(v !== undefined && eqValue(v, node.value));
        case 'in':
          return v !== undefined && inValues(v, node.values);
        case 'nin':
          return !(v !== undefined && inValues(v, node.values));
        case 'gt':
          return typeof v === 'number' && v > node.value;
        case 'gte':
          return typeof v === 'number' && v >= node.value;
        case 'lt':
          return typeof v === 'number' && v < node.value;
        case 'lte':
          return typeof v === 'number' && v <= node.value;
        case 'exists':
          return (v !== undefined) === node.value;
      }
    }
  }
}

/** Canonical Pinecone JSON for a validated AST: explicit operators, explicit $and. */
export function toPineconeFilter(node: FilterNode): Record<string, unknown> {
  switch (node.kind) {
    case 'and':
      return { $and: node.children.map(toPineconeFilter) };
    case 'or':
      return { $or: node.children.map(toPineconeFilter) };
    case 'in':
    case 'nin':
      return { [node.field]: { [`$${node.kind}`]: [...node.values] } };
    default:
      return { [node.field]: { [`$${node.kind}`]: node.value } };
  }
}

/** Every field name a filter mentions. */
export function filterFields(node: FilterNode, out = new Set<string>()): Set<string> {
  if (node.kind === 'and' || node.kind === 'or') for (const c of node.children) filterFields(c, out);
  else out.add(node.field);
  return out;
}
