import { DeadlineWatch } from './deadline-watch';

export type { Expiring } from './deadline-watch';

/**
 * The gRPC calls' deadlines (the client's `grpc-timeout` on the server leg, each upstream
 * attempt's on the upstream leg), in epoch ms, on one shared watch.
 */
export const grpcDeadlines = new DeadlineWatch(Date.now);
