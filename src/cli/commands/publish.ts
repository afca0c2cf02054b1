/**
 * `manyfold publish <artifact-dir> --to s3://bucket/prefix [--endpoint URL] [--region R] [--default]`: upload a
 * verified artifact to S3 or R2 (content-addressed, never overwriting, verified after upload) and list it in the
 * bucket's catalogue, which Lambda and the Worker read (src/publish/publish.ts). Progress on stderr, the result as
 * JSON on stdout. Credentials: the AWS SDK's standard chain (AWS_ACCESS_KEY_ID / AWS_PROFILE / ~/.aws / roles).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { DestinationError, parseDestination } from '../../publish/destination.js';

/** commander parser of an s3://bucket/prefix flag (also nightly's --publish-to): checked, kept as given */
export function destinationFlag(flag: string) {
  return (value: string): string => {
    try {
      parseDestination(value, flag);
      return value;
    } catch (e) {
      if (e instanceof DestinationError) throw new InvalidArgumentError(e.message);
      throw e;
    }
  };
}

export function endpointFlag(flag: string) {
  return (value: string): string => {
    let u: URL;
    try {
      u = new URL(value);
    } catch {
      throw new InvalidArgumentError(`${flag} ${JSON.stringify(value)} is not a URL (e.g. https://<account>.r2.cloudflarestorage.com)`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new InvalidArgumentError(`${flag} ${JSON.stringify(value)}: expected an http(s) URL`);
    return value;
  };
}

export function registerPublishCommand(program: Command): void {
  program
    .command('publish')
    .description('upload a model artifact to S3 / R2 (content-addressed, verified, never overwriting) and add it to the bucket catalogue that Lambda and the Worker serve from')
    .argument('<artifact-dir>', 'model artifact directory (manifest.json, tokenizer.json, weights-*.bin)')
    .requiredOption('--to <s3-url>', 'destination s3://bucket/prefix (keys <prefix>/<model id>/<file>, catalogue <prefix>/catalog.json)', destinationFlag('--to'))
    .option('--endpoint <url>', 'S3 API endpoint for R2, MinIO or a local server (default: AWS, or AWS_ENDPOINT_URL_S3)', endpointFlag('--endpoint'))
    .option('--region <name>', "region (default: AWS_REGION / the profile's; R2: auto)")
    .option('--default', "make this model the catalogue's default (a fresh deployment serves it before any activation)")
    .action(async (dir: string, o) => {
      const { publishArtifact } = await import('../../publish/publish.js');
      const r = await publishArtifact(dir, o.to as string, {
        ...(o.endpoint ? { endpoint: o.endpoint as string } : {}),
        ...(o.region ? { region: o.region as string } : {}),
        makeDefault: Boolean(o.default),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    });
}
