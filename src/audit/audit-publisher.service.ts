import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { jetstream, JetStreamApiCodes, JetStreamApiError, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import { requestContext } from '../common/request-context';
import { PrismaService } from '../database/prisma.service';
import type { AuditRecord } from '../generated/prisma/client';
import { NatsConnectionService } from '../messaging/nats-connection.service';
import { LOGGER } from '../observability/logger';
import { MetricsService } from '../observability/metrics.service';
import { auditRecordView } from './audit-record';
import { AuditRepository } from './audit.repository';
import { AuditService } from './audit.service';

export const AUDIT_STREAM = 'GATEHOUSE_AUDIT';

type PublisherState = 'publishing' | 'paused' | 'failing';
export const AUDIT_SUBJECT_PREFIX = 'gatehouse.audit.';

/** Records per publishing transaction. */
const BATCH_SIZE = 200;
/** Safety net: picks up records whose append nudge came before their commit, and other replicas' records. */
const POLL_INTERVAL_MS = 1000;
/** After an append, wait this long for the caller's transaction to commit before reading. */
const NUDGE_DELAY_MS = 30;
/**
 * A pass costs two round trips whatever it publishes (plus the check for unpublished records on
 * an idle poll), so under steady appends passes start at most this often and each takes what came
 * meanwhile (at 100 sign-ins/s a pass per append cost more main-thread CPU than the sign-in's own
 * statements; docs/decisions.md).
 */
const MIN_PASS_GAP_MS = 200;
const ACK_TIMEOUT_MS = 5000;
/**
 * A pass's transaction stays open (idle, holding the lock) while the acks come: it may idle this
 * long, past the pool's idle_in_transaction_session_timeout (DB_TIMEOUT_MS, 3 s), which would end
 * the session under a slow JetStream, fail the COMMIT and republish the batch on every pass.
 */
const PASS_IDLE_MS = 3 * ACK_TIMEOUT_MS;
/** After a failed pass with NATS connected (e.g. JetStream still recovering its streams after a restart). */
const RETRY_MS = 250;
/** JetStream drops a msgID it has seen within this window: republishing after a crash is harmless. */
const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;

/** `gatehouse.audit.<action>`; characters a subject cannot carry become `_`. */
export function auditSubject(action: string): string {
  const tokens = action.split('.').map((token) => token.replace(/[^A-Za-z0-9_-]/g, '_') || '_');
  return AUDIT_SUBJECT_PREFIX + tokens.join('.');
}

/**
 * Publishes every committed audit record to the JetStream stream GATEHOUSE_AUDIT, at least
 * once, in seq order, off the request path. The seq of the last acknowledged record is a
 * durable cursor in system_settings (audit_records itself is append-only); a replica advances
 * it only under a transaction-scoped advisory lock, so replicas never race each other, and a
 * record whose publication failed is retried on the next pass. The msgID is the record id, so
 * a record republished after a lost cursor update is de-duplicated by the stream.
 */
@Injectable()
export class AuditPublisherService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private nudgeTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** a record was appended here since the last pass began: that pass need not ask whether anything is unpublished */
  private appendedSincePass = false;
  private lastPassAt = 0;
  private stopped = false;
  private streamReadyOn: NatsConnection | undefined;
  private state: PublisherState = 'publishing';
  /** rejects the publishes of the batch in flight (NATS went away: their acks will not come) */
  private abortBatch: ((reason: Error) => void) | undefined;
  private readonly logger: Logger;

  constructor(
    private readonly prisma: PrismaService,
    private readonly records: AuditRepository,
    private readonly audit: AuditService,
    private readonly nats: NatsConnectionService,
    @Inject(LOGGER) logger: Logger,
    metrics: MetricsService,
  ) {
    // read at scrape time (one indexed count past the cursor), so it grows while NATS is away
    // and no pass runs; the alert rule "GatehouseAuditPublishBacklog" watches it
    const store = this.records;
    const database = this.prisma;
    new Gauge({
      name: 'gatehouse_audit_publish_backlog',
      help: 'Audit records committed but not yet acknowledged by JetStream (GATEHOUSE_AUDIT)',
      registers: [metrics.registry],
      // every process of a replica reads the same database
      aggregator: 'max',
      async collect() {
        try {
          const cursor = await store.readPublishCursor(database);
          this.set(await database.auditRecord.count({ where: { seq: { gt: cursor } } }));
        } catch {
          // database away: keep the last value rather than failing the whole scrape
        }
      },
    });
    // background work: its lines carry its own ids, never those of the request that nudged it
    this.logger = logger.child({ task: 'audit-publisher' });
  }

  onApplicationBootstrap(): void {
    if (!this.nats.enabled) return;
    this.audit.onAppend(() => {
      this.appendedSincePass = true;
      this.nudge();
    });
    this.nats.onDisconnect(() => {
      // the acks of the batch in flight will not come; give up on them now rather than
      // waiting out ACK_TIMEOUT_MS, so the pass after the reconnect is not held up
      this.abortBatch?.(new Error('NATS disconnected'));
      this.enter('paused');
    });
    this.nats.onReconnect(() => {
      // the server may have restarted without its stream
      this.streamReadyOn = undefined;
      this.nudge();
    });
    this.timer = requestContext.outside(() => setInterval(() => void this.drain(), POLL_INTERVAL_MS));
    this.timer.unref();
    this.nudge();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.nudgeTimer);
    await this.running;
  }

  /** Publishes everything committed so far; resolves when this replica's pass is over. */
  drain(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running !== undefined) {
      // a pass is under way: another follows it (after the gap), so records committed meanwhile go out too
      this.again = true;
      return this.running;
    }
    this.running = requestContext
      .outside(() => this.pass())
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    // made only when a state change is logged: most passes log nothing
    let passLogger: Logger | undefined;
    const logger = (): Logger => (passLogger ??= this.logger.child({ task_id: randomUUID() }));
    let published = 0;
    let reachedNats = false;
    this.lastPassAt = Date.now();
    this.again = false;
    // after an append here there is something to publish (unless another process took it, which
    // the lock then tells): the unpublished check is for the idle poll
    let known = this.appendedSincePass;
    this.appendedSincePass = false;
    try {
      for (; ; known = true) {
        const count = await this.publishBatch(known);
        if (count === undefined) break;
        reachedNats = true;
        published += count;
        if (count < BATCH_SIZE || this.stopped) break;
      }
      if (reachedNats) this.enter('publishing', logger, { published });
      // records committed during this pass: the next pass, after the gap
      if (this.again) this.nudge();
    } catch (error) {
      // check the stream again next time: it may have been deleted or the server replaced
      this.streamReadyOn = undefined;
      if (!this.nats.isConnected) {
        this.enter('paused', logger);
        return;
      }
      this.enter('failing', logger, { err: error });
      this.retrySoon();
    }
  }

  /** Logs state changes once each: paused (NATS away), failing (NATS there, publishing fails), publishing. */
  private enter(state: PublisherState, logger = (): Logger => this.logger, fields: Record<string, unknown> = {}): void {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    if (state === 'paused') {
      logger().warn(fields, 'NATS unreachable: audit records wait in the database and are published when it is back');
    } else if (state === 'failing') {
      logger().warn(fields, 'audit records not published to JetStream; retrying');
    } else {
      logger().info({ ...fields, after: previous }, 'audit records publishing to JetStream again');
    }
  }

  private retrySoon(): void {
    if (this.stopped) return;
    requestContext.outside(() => setTimeout(() => this.nudge(), RETRY_MS)).unref();
  }

  private nudge(): void {
    if (this.stopped || this.nudgeTimer !== undefined) return;
    const delay = Math.max(NUDGE_DELAY_MS, this.lastPassAt + MIN_PASS_GAP_MS - Date.now());
    this.nudgeTimer = requestContext.outside(() =>
      setTimeout(() => {
        this.nudgeTimer = undefined;
        void this.drain();
      }, delay),
    );
    this.nudgeTimer.unref();
  }

  /**
   * One transaction: lock, read the cursor, publish the next records, advance the cursor past
   * those acknowledged. `known`: something was appended, so skip asking whether anything is unpublished.
   */
  private async publishBatch(known: boolean): Promise<number | undefined> {
    const connection = this.nats.nc;
    if (connection === undefined || !this.nats.isConnected) return undefined;
    await this.ensureStream(connection);
    // nothing past the cursor (the usual idle poll, or another process published it): no transaction
    if (!known && !(await this.records.hasUnpublished(this.prisma))) return 0;
    const js = jetstream(connection);
    // BEGIN, the lock and the batch, then the cursor and COMMIT: two round trips sent by `pg`
    // (through Prisma's interactive transaction it was five statements, each through its query
    // interpreter, the largest main-thread cost of a sign-in outside the hash; docs/decisions.md)
    const outcome = await this.prisma.withConnection(async (client): Promise<{ count: number; failure?: unknown }> => {
      const batch = await this.records.beginPublisherBatch(client, BATCH_SIZE, PASS_IDLE_MS);
      if (batch.length === 0) {
        await this.records.endPublishTransaction(client, undefined);
        return { count: 0 };
      }
      let abort!: (reason: Error) => void;
      const aborted = new Promise<never>((_, reject) => {
        abort = reject;
      });
      this.abortBatch = abort;
      aborted.catch(() => undefined);
      // NATS went away during the queries above, before there was a batch to abort: a publish
      // now would wait in the client's buffer for ACK_TIMEOUT_MS and hold up the pass after
      // the reconnect (seen: caught up 3.5 s after NATS returned instead of ~0.2 s)
      if (!this.nats.isConnected) abort(new Error('NATS disconnected'));
      // published together (one connection keeps their order), acknowledged one by one; a
      // publish given up at a disconnect may still reach the stream, which drops the repeat (msgID)
      const outcomes = await Promise.allSettled(batch.map((row) => Promise.race([this.publish(js, row), aborted])));
      this.abortBatch = undefined;
      const failed = outcomes.findIndex((outcome) => outcome.status === 'rejected');
      const acknowledged = failed === -1 ? batch : batch.slice(0, failed);
      // the cursor moves past what was acknowledged, also when a later publish failed (that
      // one and those after it go out again on the next pass)
      await this.records.endPublishTransaction(client, acknowledged.at(-1)?.seq);
      return { count: batch.length, failure: failed === -1 ? undefined : (outcomes[failed] as PromiseRejectedResult).reason };
    });
    if (outcome.failure !== undefined) throw outcome.failure;
    return outcome.count;
  }

  private async publish(js: JetStreamClient, row: AuditRecord): Promise<void> {
    await js.publish(auditSubject(row.action), JSON.stringify(auditRecordView(row)), { msgID: row.id, timeout: ACK_TIMEOUT_MS });
  }

  private async ensureStream(connection: NatsConnection): Promise<void> {
    if (this.streamReadyOn === connection) return;
    const jsm = await jetstreamManager(connection);
    try {
      await jsm.streams.info(AUDIT_STREAM);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
      try {
        await jsm.streams.add({ name: AUDIT_STREAM, subjects: [`${AUDIT_SUBJECT_PREFIX}>`], duplicate_window: nanos(DUPLICATE_WINDOW_MS) });
        this.logger.info({ stream: AUDIT_STREAM }, 'created JetStream stream');
      } catch (addError) {
        // another replica may have created it at the same moment
        await jsm.streams.info(AUDIT_STREAM).catch(() => Promise.reject(addError as Error));
      }
    }
    this.streamReadyOn = connection;
  }
}
