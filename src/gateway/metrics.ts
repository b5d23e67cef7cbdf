/**
 * Prometheus metrics (prom-client), named in the usual style: `_total` counters, `_seconds` histograms, gauges for
 * what is live now. Each gateway has its own registry, so several gateways in one process do not collide.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({ name: 'corolla_gateway_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [this.registry] });
  readonly httpErrors = new Counter({ name: 'corolla_gateway_http_errors_total', help: 'HTTP requests answered with an error (4xx/5xx, or an error event mid-stream), by route and status', labelNames: ['route', 'status'], registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'corolla_gateway_prompt_tokens_total', help: 'Prompt tokens processed', labelNames: ['model'], registers: [this.registry] });
  readonly generatedTokens = new Counter({ name: 'corolla_gateway_generated_tokens_total', help: 'Tokens generated', labelNames: ['model'], registers: [this.registry] });
  readonly timeToFirstToken = new Histogram({ name: 'corolla_gateway_time_to_first_token_seconds', help: 'From the request to its first generated token', labelNames: ['model'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly interTokenLatency = new Histogram({ name: 'corolla_gateway_inter_token_latency_seconds', help: 'Between consecutive generated tokens of one request', labelNames: ['model'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly activeSessions = new Gauge({ name: 'corolla_gateway_active_sessions', help: 'Generations in flight on this gateway', labelNames: ['model'], registers: [this.registry] });
  readonly servers = new Gauge({ name: 'corolla_swarm_servers', help: 'Online servers of the model', labelNames: ['model'], registers: [this.registry] });
  readonly blockCoverage = new Gauge({ name: 'corolla_swarm_block_coverage_ratio', help: 'Fraction of the model blocks served by at least one online server', labelNames: ['model'], registers: [this.registry] });
  readonly modelAvailable = new Gauge({ name: 'corolla_swarm_model_available', help: '1 when a route covers every block of the model', labelNames: ['model'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'corolla_gateway_' });
  }
}
