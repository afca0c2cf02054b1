/** `s3://bucket/prefix` (the --to flag of `manyfold publish`, nightly's --publish-to) parsed and checked. */
export interface PublishDestination {
  bucket: string;
  /** '' or 'a/b' (no leading or trailing slash) */
  prefix: string;
}

export class DestinationError extends Error {
  override name = 'DestinationError';
}

// S3's bucket naming rules (R2's are a subset): 3-63 characters, lower-case letters, digits, dots and hyphens,
// starting and ending with a letter or digit
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX_PART = /^[A-Za-z0-9!_.*'()-]+$/;

export function parseDestination(url: string, flag = '--to'): PublishDestination {
  const m = /^s3:\/\/([^/]*)\/?(.*)$/.exec(url.trim());
  if (!m) throw new DestinationError(`${flag} ${JSON.stringify(url)}: expected s3://bucket/prefix (R2 too: its S3 endpoint goes in --endpoint)`);
  const [, bucket, rawPrefix] = m;
  if (!BUCKET.test(bucket) || bucket.includes('..')) {
    throw new DestinationError(`${flag} ${JSON.stringify(url)}: bucket name ${JSON.stringify(bucket)} is not valid (3-63 lower-case letters, digits, '.', '-')`);
  }
  const prefix = rawPrefix.replace(/\/+$/, '');
  if (prefix && prefix.split('/').some((p) => !PREFIX_PART.test(p) || p === '.' || p === '..')) {
    throw new DestinationError(`${flag} ${JSON.stringify(url)}: prefix ${JSON.stringify(prefix)} must be '/'-separated names of letters, digits and !_.*'()-`);
  }
  return { bucket, prefix };
}

export function destinationUrl(d: PublishDestination): string {
  return `s3://${d.bucket}/${d.prefix ? `${d.prefix}/` : ''}`;
}
