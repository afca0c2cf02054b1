/** zod schemas for the dataset files Manyfold reads and for scene graphs. */
import { z } from 'zod';

export const SCENE_RELATIONS = ['left of', 'right of', 'above', 'below', 'bigger than', 'smaller than'] as const;

export const SceneObjectSchema = z.object({
  shape: z.string().min(1),
  color: z.string().min(1),
  size: z.enum(['small', 'medium', 'large']),
  x: z.number().min(0).max(1),
  y: z.number().min(0).max(1),
});

export const SceneGraphSchema = z
  .object({
    background: z.string(),
    objects: z.array(SceneObjectSchema),
    relations: z.array(
      z.object({
        subject: z.number().int().min(0),
        relation: z.enum(SCENE_RELATIONS),
        object: z.number().int().min(0),
      }),
    ),
  })
  .superRefine((g, ctx) => {
    g.relations.forEach((r, i) => {
      for (const key of ['subject', 'object'] as const) {
        if (r[key] >= g.objects.length) {
          ctx.addIssue({
            code: 'custom',
            path: ['relations', i, key],
            message: `refers to object ${r[key]} but the scene has ${g.objects.length} objects`,
          });
        }
      }
    });
  });

const TargetIdSchema = z.union([z.string().min(1, 'targetId is empty'), z.number().int()]).transform(String);

/** One image entry of a Karpathy-split JSON (Flickr30k / COCO). Unknown keys (imgid, sentids, cocoid...) are ignored. */
export const KarpathyImageSchema = z.object({
  filename: z.string().min(1, 'filename is empty'),
  filepath: z.string().optional(),
  split: z.string().min(1, 'split is empty'),
  sentences: z.array(z.object({ raw: z.string() })),
  scene: SceneGraphSchema.optional(),
  /** the id of this image's item in a system under test (remote probes, src/probe): what its search returns */
  targetId: TargetIdSchema.optional(),
});

export const KarpathyFileSchema = z.object({
  images: z.array(z.unknown()),
});

/** One line of a JSONL manifest. `split` may be omitted for per-split manifests (then load without a split filter). */
export const JsonlRowSchema = z.object({
  image: z.string().min(1, 'image is empty'),
  captions: z.array(z.string()),
  split: z.string().min(1, 'split is empty').optional(),
  scene: SceneGraphSchema.optional(),
  targetId: TargetIdSchema.optional(),
});

/** First issue of a failed zod parse, as "path: message" (path in a.b[2].c form). */
export function describeZodError(err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid value';
  let path = '';
  for (const p of issue.path) {
    path += typeof p === 'number' ? `[${p}]` : path ? `.${String(p)}` : String(p);
  }
  let message = issue.message.replace(/^Invalid input: /, '');
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) {
    message = `is missing (expected ${String((issue as { expected?: unknown }).expected ?? 'a value')})`;
  }
  const more = err.issues.length > 1 ? ` (and ${err.issues.length - 1} more problem${err.issues.length > 2 ? 's' : ''})` : '';
  return `${path ? `${path}: ` : ''}${message}${more}`;
}
