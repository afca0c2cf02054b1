/// <reference path="../../.sst/platform/config.d.ts" />
/**
 * The AWS components of Manyfold (used by sst.config.ts):
 *   ModelBucket       S3: published model artifacts, models/<model id>/{manifest.json, tokenizer.json, weights-*.bin}
 *                     and the catalogue models/catalog.json the Api discovers them from (`manyfold publish <dir>
 *                     --to s3://<bucket>/models`, or `manyfold nightly --publish-to`; docs/deployment.md);
 *                     MODEL_IDS at deploy time (optional) restricts the Api to those ids, first = default
 *   DataBucket        S3: items, blobs, jobs, re-index progress (EdgeStore keys)
 *   PineconeApiKey, ManyfoldApiKeys, GithubToken   SST secrets (`sst secret set NAME value --stage prod`)
 *   ReindexDlq + ReindexQueue   SQS; 3 receives then the DLQ (redrive policy); consumers with partial-batch failures
 *   JobsDlq + JobsQueue         SQS: probes and activations ({kind, id}) sent by the Api after its 202 and run by
 *                     their own consumer (15 min, the Lambda maximum: a probe is minutes; the Api function is frozen
 *                     once it has answered); one job per invocation, 3 receives, then the DLQ marks the job failed
 *   Api               Lambda (functions/lambda.handler) with a function URL (auth is the API's bearer keys)
 *   Nightly           cron 03:00 UTC -> functions/lambda.nightlyTrigger (dispatches the GPU runner's workflow)
 */
export function manyfoldStack() {
  const modelBucket = new sst.aws.Bucket('ModelBucket', { versioning: true });
  const dataBucket = new sst.aws.Bucket('DataBucket');
  const pineconeKey = new sst.Secret('PineconeApiKey');
  const apiKeys = new sst.Secret('ManyfoldApiKeys');
  const githubToken = new sst.Secret('GithubToken');
  const pineconeHost = process.env.PINECONE_HOST ?? '';
  const modelIds = process.env.MODEL_IDS ?? '';

  const dlq = new sst.aws.Queue('ReindexDlq');
  const queue = new sst.aws.Queue('ReindexQueue', { dlq: { queue: dlq.arn, retry: 3 }, visibilityTimeout: '5 minutes' });
  const jobsDlq = new sst.aws.Queue('JobsDlq');
  // visibility = the consumer's timeout: a message is never redelivered while a consumer still runs its job
  const jobs = new sst.aws.Queue('JobsQueue', { dlq: { queue: jobsDlq.arn, retry: 3 }, visibilityTimeout: '15 minutes' });

  const environment = {
    MANYFOLD_INDEX: 'pinecone',
    PINECONE_HOST: pineconeHost,
    PINECONE_API_KEY: pineconeKey.value,
    MANYFOLD_API_KEYS: apiKeys.value,
    MANYFOLD_BACKEND: 'auto',
    MANYFOLD_LOG_LEVEL: 'info',
    MODEL_BUCKET: modelBucket.name,
    MODEL_PREFIX: 'models',
    // optional filter of the catalogue; unset = every published model, the catalogue's default first
    ...(modelIds ? { MODEL_IDS: modelIds } : {}),
    DATA_BUCKET: dataBucket.name,
    REINDEX_QUEUE_URL: queue.url,
    JOBS_QUEUE_URL: jobs.url,
  };
  const common = {
    runtime: 'nodejs20.x' as const,
    architecture: 'x86_64' as const,
    memory: '2048 MB' as const,
    link: [modelBucket, dataBucket, queue, jobs, pineconeKey, apiKeys],
    environment,
    // the tfjs wasm binaries are read from disk by the Node backend
    copyFiles: [{ from: 'node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm', to: 'node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm' }],
    nodejs: { install: ['sharp', '@lancedb/lancedb'], esbuild: { external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'] } },
  };

  const api = new sst.aws.Function('Api', { ...common, handler: 'functions/lambda.handler', timeout: '30 seconds', url: true });
  queue.subscribe({ ...common, handler: 'functions/lambda.reindexConsumer', timeout: '5 minutes' }, { batch: { size: 10, window: '5 seconds', partialResponses: true } });
  dlq.subscribe({ ...common, handler: 'functions/lambda.reindexDeadLetter', timeout: '1 minute' });
  jobs.subscribe({ ...common, handler: 'functions/lambda.jobsConsumer', timeout: '15 minutes' }, { batch: { size: 1, partialResponses: true } });
  jobsDlq.subscribe({ ...common, handler: 'functions/lambda.jobsDeadLetter', timeout: '1 minute' });

  new sst.aws.Cron('Nightly', {
    schedule: 'cron(0 3 * * ? *)',
    function: {
      handler: 'functions/lambda.nightlyTrigger',
      runtime: 'nodejs20.x',
      timeout: '30 seconds',
      link: [githubToken],
      environment: { GITHUB_REPOSITORY: process.env.GITHUB_REPOSITORY ?? 'owner/manyfold', GITHUB_TOKEN: githubToken.value, NIGHTLY_REF: 'main' },
    },
  });

  return { url: api.url, modelBucket: modelBucket.name, dataBucket: dataBucket.name, queue: queue.url, jobs: jobs.url };
}
