import type { z } from 'zod';

/** One message naming every offending flag of a script's zod-validated command line. */
export function flagError(error: z.ZodError): Error {
  return new Error(`bad flag: ${error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}`);
}
