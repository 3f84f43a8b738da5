import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

const REQUEST = 'gatehouse:replica-metrics-request';
const RESPONSE = 'gatehouse:replica-metrics-response';
const TIMEOUT_MS = 5000;

interface Message {
  type?: string;
  id?: number;
  text?: string;
  error?: string;
}

/**
 * `/metrics` answers for the whole replica (CONTRACT §14). Alone, a process answers with its own
 * registry. As one of WORKERS processes it asks the primary, which collects every worker's
 * registry over the cluster channel (prom-client's AggregatorRegistry: counters and histograms
 * summed, gauges summed unless they say otherwise) and sends the text back.
 */
export class ReplicaMetrics {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve(text: string): void; reject(error: Error): void; timer: NodeJS.Timeout }>();

  constructor(private readonly registry: Registry) {
    if (!cluster.isWorker) return;
    AggregatorRegistry.setRegistries(registry);
    // constructing one installs the worker's answer to the primary's collection requests
    new AggregatorRegistry();
    process.on('message', (message: Message) => {
      if (message?.type !== RESPONSE || message.id === undefined) return;
      const waiting = this.pending.get(message.id);
      if (waiting === undefined) return;
      this.pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (message.error !== undefined) waiting.reject(new Error(message.error));
      else waiting.resolve(message.text ?? '');
    });
  }

  async metrics(): Promise<string> {
    if (!cluster.isWorker || process.send === undefined) return this.registry.metrics();
    const id = (this.nextId += 1);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('the replica did not answer with its metrics in time'));
      }, TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      process.send!({ type: REQUEST, id });
    });
  }
}

/** The primary's side: answers a worker's request with every worker's metrics aggregated. */
export function serveReplicaMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: Message) => {
    if (message?.type !== REQUEST) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: RESPONSE, id: message.id, text }),
      (error: Error) => worker.send({ type: RESPONSE, id: message.id, error: error.message }),
    );
  });
}
