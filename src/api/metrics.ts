/** Prometheus metrics of one app (its own registry, so several apps in one process never collide). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { tf } from '../engine/tf.js';

export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'manyfold_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'] as const, registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'manyfold_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({ name: 'manyfold_rate_limited_total', help: 'requests refused with 429', registers: [this.registry] });
  readonly encoderBatch = new Histogram({
    name: 'manyfold_encoder_batch_size',
    help: 'inputs per encoder forward pass (micro-batching)',
    labelNames: ['kind'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry],
  });
  readonly encoderSeconds = new Histogram({
    name: 'manyfold_encoder_seconds',
    help: 'encoder queue turn duration',
    labelNames: ['kind'] as const,
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly indexSeconds = new Histogram({
    name: 'manyfold_index_query_seconds',
    help: 'vector index query time',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  readonly probes = new Gauge({ name: 'manyfold_probes', help: 'probe jobs by status', labelNames: ['status'] as const, registers: [this.registry] });

  constructor(queueDepth: () => number) {
    collectDefaultMetrics({ register: this.registry, prefix: 'manyfold_' });
    new Gauge({ name: 'manyfold_tf_tensors', help: 'tf.memory().numTensors', registers: [this.registry], collect() { this.set(tf.memory().numTensors); } });
    new Gauge({ name: 'manyfold_encoder_queue_depth', help: 'encoder jobs waiting', registers: [this.registry], collect() { this.set(queueDepth()); } });
  }
}
