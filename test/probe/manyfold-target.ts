/**
 * The target.json of a Manyfold API (its /v1/search, both query kinds), as docs/probe-targets.md shows it: what the
 * tests and scripts/probe-remote-figures.ts point `manyfold probe --target` at when the system under test is a
 * Manyfold server. The key comes from the environment (`${MANYFOLD_API_KEY}`), as a user's would.
 */
import { parseTargetSpec, type TargetSpec } from '../../src/probe/target/index.js';

export function manyfoldTarget(baseUrl: string, opts: { name: string; key: string; limits?: Record<string, number> }): TargetSpec {
  return parseTargetSpec(
    {
      name: opts.name,
      request: { url: `${baseUrl}/v1/search`, method: 'POST', headers: { authorization: 'Bearer ${MANYFOLD_API_KEY}' } },
      text: { body: { text: '{{text}}', target: 'images', topK: '{{topK}}' } },
      image: { encoding: 'json', body: { image: '{{imageBase64}}', target: 'texts', topK: '{{topK}}' } },
      response: { results: 'results', id: 'id', score: 'score' },
      ...(opts.limits ? { limits: opts.limits } : {}),
    },
    `${opts.name} target`,
    { MANYFOLD_API_KEY: opts.key },
  );
}
