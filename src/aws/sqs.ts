/**
 * Sending to an SQS queue with the AWS SDK v3. @aws-sdk/client-sqs ships with the Lambda runtime and is not a
 * dependency, so it is imported by name at run time, only when a queue is configured.
 */
type SqsModule = {
  SQSClient: new (config: object) => { send(command: unknown): Promise<{ Failed?: unknown[] }> };
  SendMessageBatchCommand: new (input: { QueueUrl: string; Entries: { Id: string; MessageBody: string }[] }) => unknown;
};
const CLIENT_SQS = '@aws-sdk/client-sqs';

/** SendMessageBatch accepts at most 10 entries */
const SQS_BATCH = 10;

/** Sends JSON message bodies to the queue, SQS_BATCH per call; a message SQS rejects fails the send, naming `what`. */
export async function sqsSender<T>(queueUrl: string, what: string): Promise<(msgs: T[]) => Promise<void>> {
  const m = (await import(/* @vite-ignore */ CLIENT_SQS)) as SqsModule;
  const client = new m.SQSClient({});
  return async (msgs) => {
    for (let at = 0; at < msgs.length; at += SQS_BATCH) {
      const chunk = msgs.slice(at, at + SQS_BATCH);
      const r = await client.send(new m.SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map((b, i) => ({ Id: String(i), MessageBody: JSON.stringify(b) })) }));
      if (r.Failed?.length) throw new Error(`SQS rejected ${r.Failed.length} ${what} messages`);
    }
  };
}
