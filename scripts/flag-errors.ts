import { parseArgs } from 'node:util';
import type { z } from 'zod';

/** One message naming every offending flag of a script's zod-validated command line. */
export function flagError(error: z.ZodError): Error {
  return new Error(`bad flag: ${error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}`);
}

/**
 * Parses a script's command line against a zod object whose keys are its flags, each given as `--key value`; the
 * flag list comes from the schema so the two cannot drift. Keys named in `booleans` are switches instead, `--key`
 * or `--no-key` (the negation wins). Unknown flags and invalid values throw one message. `args` defaults to the
 * process's own.
 */
export function parseFlags<S extends z.ZodObject<z.ZodRawShape>>(
  schema: S,
  opts: { args?: string[]; booleans?: readonly string[] } = {},
): z.output<S> {
  const booleans = new Set(opts.booleans);
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const k of Object.keys(schema.shape)) {
    if (booleans.has(k)) options[k] = options[`no-${k}`] = { type: 'boolean' };
    else options[k] = { type: 'string' };
  }
  const { values } = parseArgs({ args: opts.args, options, strict: true });
  for (const k of booleans) {
    if (values[`no-${k}`]) values[k] = false;
    delete values[`no-${k}`];
  }
  const parsed = schema.safeParse(values);
  if (!parsed.success) throw flagError(parsed.error);
  return parsed.data;
}
