import { parseArgs } from 'node:util';
import type { z } from 'zod';

/** One message naming every offending flag of a script's zod-validated command line. */
export function flagError(error: z.ZodError): Error {
  return new Error(`bad flag: ${error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}`);
}

/**
 * Parses a script's command line against a zod object whose keys are its flags, each given as `--key value`; the
 * flag list comes from the schema so the two cannot drift. Unknown flags and invalid values throw one message.
 */
export function parseFlags<S extends z.ZodObject<z.ZodRawShape>>(schema: S): z.output<S> {
  const { values } = parseArgs({
    options: Object.fromEntries(Object.keys(schema.shape).map((k) => [k, { type: 'string' as const }])),
    strict: true,
  });
  const parsed = schema.safeParse(values);
  if (!parsed.success) throw flagError(parsed.error);
  return parsed.data;
}
