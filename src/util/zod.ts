import type { z } from 'zod';

/** A zod error as one line: the first `max` issues as `path: message` (`(root)` for the top level), '; '-joined. */
export function formatZodIssues(err: z.ZodError, max = 6): string {
  return err.issues
    .slice(0, max)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}
