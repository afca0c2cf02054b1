/** Synthetic Lambda events as AWS delivers them, for the handler tests (no AWS call). */

/** a function URL / API Gateway payload v2.0 event */
export function urlEvent(method: string, path: string, opts: { key?: string; json?: unknown; query?: string } = {}) {
  const headers: Record<string, string> = { host: 'abc123.lambda-url.eu-west-1.on.aws', 'user-agent': 'vitest', 'x-forwarded-proto': 'https' };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: opts.query ?? '',
    headers,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abc123',
      domainName: 'abc123.lambda-url.eu-west-1.on.aws',
      domainPrefix: 'abc123',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: `req-${Math.random().toString(36).slice(2)}`,
      routeKey: '$default',
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}),
    isBase64Encoded: false,
  };
}

/** an SQS event delivering these message bodies, as the queue's consumer receives it */
export function sqsEvent(bodies: unknown[], idPrefix = 'm'): { Records: { messageId: string; body: string }[] } {
  return { Records: bodies.map((b, i) => ({ messageId: `${idPrefix}${i}`, body: typeof b === 'string' ? b : JSON.stringify(b) })) };
}
