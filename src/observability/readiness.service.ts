import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { DatabaseProbe } from '../database/database-probe';
import { PrismaService } from '../database/prisma.service';
import { NatsConnectionService } from '../messaging/nats-connection.service';
import { LOGGER } from './logger';

type Check = () => boolean | Promise<boolean>;
type DependencyState = 'ok' | 'failing';

/** How often the shared dependencies are checked in the background. */
const DEPENDENCY_CHECK_MS = 1000;

export interface Readiness {
  /** 200 when this replica can take traffic */
  httpStatus: 200 | 503;
  body: { status: 'ready' | 'degraded' | 'unready'; checks: Record<string, string> };
}

/**
 * What /ready reports (CONTRACT §8 as amended). "Ready" means *this replica* can take
 * traffic: started, migrations applied (the database module finished), routing loaded, not
 * shutting down. Feature modules add such conditions with `register`. The shared
 * dependencies (database, NATS) are reported in `checks` and make the status `degraded`, but
 * never 503: they are shared, so failing on them would take every replica out at once, and a
 * request that needs one answers 503 `unavailable` itself.
 *
 * Dependencies are checked in the background on a connection of their own; the probe only
 * reads the last result, so it never queues behind request traffic.
 */
@Injectable()
export class ReadinessService implements OnApplicationBootstrap, OnApplicationShutdown {
  private started = false;
  private shuttingDown = false;
  private readonly required = new Map<string, Check>();
  /** absent for the embedded store: it serves one connection at a time and lives in this process */
  private readonly probe: DatabaseProbe | undefined;
  private database: DependencyState = 'failing';
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;

  constructor(
    prisma: PrismaService,
    private readonly nats: NatsConnectionService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    if (!prisma.embedded) this.probe = new DatabaseProbe(prisma.databaseUrl);
    else this.database = 'ok';
  }

  /** A condition of this replica that must hold for /ready to be 200 (e.g. routing loaded). */
  register(name: string, check: Check): void {
    this.required.set(name, check);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.checkDependencies();
    this.timer = setInterval(() => void this.checkDependencies(), DEPENDENCY_CHECK_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.checking;
    await this.probe?.close();
  }

  /** Called once the listener is up and every module started. */
  markStarted(): void {
    this.started = true;
  }

  beginShutdown(): void {
    this.shuttingDown = true;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** The database as last seen by the background check. */
  get databaseState(): DependencyState {
    return this.database;
  }

  async evaluate(): Promise<Readiness> {
    const checks: Record<string, string> = {
      database: this.database,
      nats: this.nats.enabled ? (this.nats.isConnected ? 'ok' : 'failing') : 'disabled',
    };
    let ready = this.started && !this.shuttingDown;
    for (const [name, check] of this.required) {
      const ok = await Promise.resolve()
        .then(check)
        .catch(() => false);
      checks[name] = ok ? 'ok' : 'failing';
      ready &&= ok;
    }
    if (!this.started) checks.started = 'failing';
    if (this.shuttingDown) checks.shutdown = 'failing';
    if (!ready) return { httpStatus: 503, body: { status: 'unready', checks } };
    const degraded = checks.database !== 'ok' || checks.nats === 'failing';
    return { httpStatus: 200, body: { status: degraded ? 'degraded' : 'ready', checks } };
  }

  private checkDependencies(): Promise<void> {
    const probe = this.probe;
    if (probe === undefined) return Promise.resolve();
    this.checking ??= (async () => {
      try {
        const state: DependencyState = (await probe.check()) ? 'ok' : 'failing';
        if (state !== this.database) {
          if (state === 'failing') this.logger.warn({ dependency: 'database' }, 'database check failing; /ready reports degraded');
          else this.logger.info({ dependency: 'database' }, 'database check ok');
        }
        this.database = state;
      } finally {
        this.checking = undefined;
      }
    })();
    return this.checking;
  }
}
