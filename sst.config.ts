/// <reference path="./.sst/platform/config.d.ts" />
/**
 * AWS app (SST v3 / Pulumi): the Manyfold API as a Lambda with a function URL, an S3 bucket for model
 * artifacts, an S3 bucket for items/progress, secrets for the Pinecone key and the API keys, the SQS re-index
 * queue with its dead-letter queue, and the nightly cron. Components live in infra/sst/.
 * Deploying needs Pulumi from the internet (not on the build machines); CI typechecks this file offline:
 * `npm run typecheck:sst` (docs/deployment.md).
 */
export default $config({
  app(input) {
    return {
      name: 'manyfold',
      removal: input?.stage === 'production' ? 'retain' : 'remove',
      protect: input?.stage === 'production',
      home: 'aws',
    };
  },
  async run() {
    const { manyfoldStack } = await import('./infra/sst/manyfold.js');
    return manyfoldStack();
  },
});
