import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { NatsConnectionService } from '../messaging/nats-connection.service';
import { LOGGER } from '../observability/logger';
import { TokenBucketStorage } from './token-bucket.storage';

/** How often each replica tells the others what it was asked for (and that it lives). */
export const REPORT_INTERVAL_MS = 100;
/**
 * While this replica has no demand to report (and told the others so), its report is only a
 * sign of life: sent this often instead of every interval. Ten empty reports a second from every
 * process, each parsed by every other, were most of an idle replica's CPU (docs/decisions.md
 * "Sign-in main thread, session 5").
 */
export const QUIET_REPORT_INTERVAL_MS = 500;
/** A replica silent this long is no longer counted. */
const PEER_TTL_MS = 1500;
/** Weight of the newest interval in the smoothed demand. */
const SMOOTHING = 0.5;
/** Demand below this (calls per interval, smoothed) is not reported: the key has gone quiet. */
const QUIET = 0.01;

interface DemandReport {
  origin: string;
  /** smoothed calls per interval, per bucket key with demand */
  demand: Record<string, number>;
}

interface Peer {
  seenAt: number;
  demand: Record<string, number>;
}

/**
 * The service-wide budget of CONTRACT §9 without a remote round trip per call. Every bucket is
 * local; what replicas share over NATS, every REPORT_INTERVAL_MS, is their demand per key (calls
 * asked for, admitted or not, smoothed). Each replica sizes its bucket for a key to its share of
 * the demand: own / (own + others'). Traffic all on one replica gives it the whole rate; spread
 * evenly, half each; the shares of the replicas add up to one, so the service admits one rate
 * and one burst. A key new to a replica starts at 1/n of the
 * live replicas until the next report. With NATS down each replica falls back to
 * 1/n of every budget, n being the replicas it knew when the connection went (docs/decisions.md
 * "Traffic limits", with the error bounds).
 */
@Injectable()
export class SharedBudget implements OnModuleInit, OnApplicationShutdown {
  readonly origin = randomUUID();
  private readonly peers = new Map<string, Peer>();
  private readonly ownDemand = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private subscription: Subscription | undefined;
  /** when this replica last published its report, and whether that report was empty */
  private lastReportAt = 0;
  private lastReportEmpty = false;
  /** replicas (this one included) when NATS was last seen up: the fallback share is 1/this */
  private replicasWhenConnected = 1;
  /** per deployment: the replicas of one deployment share its routing bucket, and only they count */
  private readonly subject: string;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly nats: NatsConnectionService,
    private readonly storage: TokenBucketStorage,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.subject = `gatehouse.limits.${config.ROUTING_KV_BUCKET}.demand`;
  }

  onModuleInit(): void {
    const connection = this.nats.nc;
    if (connection === undefined) return; // single node: every share stays 1
    this.subscription = connection.subscribe(this.subject, {
      callback: (error, message) => {
        if (error !== null) return;
        try {
          const report = message.json<DemandReport>();
          if (report.origin !== this.origin) this.peers.set(report.origin, { seenAt: Date.now(), demand: report.demand });
        } catch {
          this.logger.warn('ignored a malformed limits demand report');
        }
      },
    });
    this.storage.initialShare = () => this.initialShare();
    this.timer = setInterval(() => this.tick(), REPORT_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.subscription?.unsubscribe();
  }

  /** Live replicas, this one included. */
  get replicas(): number {
    const now = Date.now();
    let live = 1;
    for (const [origin, peer] of this.peers) {
      if (now - peer.seenAt <= PEER_TTL_MS) live++;
      else this.peers.delete(origin);
    }
    return live;
  }

  /** A key new here starts at an even share: right when the traffic is spread, half a burst short when it is not. */
  private initialShare(): number {
    return this.nats.isConnected ? 1 / this.replicas : 1 / this.replicasWhenConnected;
  }

  /** One interval: fold this replica's attempts into its demand, tell the others, resize the buckets. */
  tick(): void {
    const report: Record<string, number> = {};
    for (const [key, bucket] of this.storage.buckets) {
      const demand = SMOOTHING * bucket.attempts + (1 - SMOOTHING) * (this.ownDemand.get(key) ?? 0);
      bucket.attempts = 0;
      if (demand < QUIET) {
        this.ownDemand.delete(key);
        continue;
      }
      this.ownDemand.set(key, demand);
      report[key] = demand;
    }
    for (const key of this.ownDemand.keys()) if (!this.storage.buckets.has(key)) this.ownDemand.delete(key);

    if (!this.nats.isConnected) {
      const fallback = 1 / this.replicasWhenConnected;
      for (const bucket of this.storage.buckets.values()) bucket.share = fallback;
      return;
    }
    const replicas = this.replicas;
    this.replicasWhenConnected = replicas;
    const empty = this.ownDemand.size === 0;
    const now = Date.now();
    // an empty report after an empty one only says "alive": every QUIET_REPORT_INTERVAL_MS is enough
    if (!(empty && this.lastReportEmpty && now - this.lastReportAt < QUIET_REPORT_INTERVAL_MS)) {
      try {
        this.nats.nc?.publish(this.subject, JSON.stringify({ origin: this.origin, demand: report } satisfies DemandReport));
        this.lastReportAt = now;
        this.lastReportEmpty = empty;
      } catch {
        // the connection just went; the next tick falls back
      }
    }
    if (replicas === 1) {
      for (const bucket of this.storage.buckets.values()) bucket.share = 1;
      return;
    }
    for (const [key, bucket] of this.storage.buckets) {
      const own = this.ownDemand.get(key) ?? 0;
      let others = 0;
      for (const peer of this.peers.values()) others += peer.demand[key] ?? 0;
      bucket.share = others === 0 ? 1 : own === 0 ? 1 / replicas : own / (own + others);
    }
  }
}
