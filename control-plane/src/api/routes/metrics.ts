import { Hono } from 'hono';
import type { Redis } from 'ioredis';
import type { KilnMetrics } from '../../metrics/kiln.js';
import { redisGuard } from '../redis-guard.js';

/** `GET /metrics` in Prometheus' text format; outside /api/v1 where scrapers expect it. */
export function metricsRoutes(metrics: KilnMetrics, redis: Redis): Hono {
  const app = new Hono();
  // Queue depths are read through BullMQ, whose connection would wait for Redis instead of failing.
  app.use('/metrics', redisGuard(redis));
  app.get('/metrics', async (c) => c.body(await metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }));
  return app;
}
