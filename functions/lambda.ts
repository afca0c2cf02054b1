/**
 * AWS Lambda entries (sst.config.ts, infra/sst/manyfold.ts name them as functions/lambda.<export>). Thin: the
 * adapter (environment, S3, SQS, the handlers) is src/aws/lambda.ts; its header lists the environment.
 */
export { boot, bootLambda, consumeJobs, handler, jobsConsumer, jobsDeadLetter, nightlyTrigger, reindexConsumer, reindexDeadLetter } from '../src/aws/lambda.js';
export type { LambdaBootOptions } from '../src/aws/lambda.js';
