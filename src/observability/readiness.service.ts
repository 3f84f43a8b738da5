import { Injectable } from '@nestjs/common';
import { PrismaService } from '../database/prisma.service';
import { NatsConnectionService } from '../messaging/nats-connection.service';

type Check = () => boolean | Promise<boolean>;

/** What /ready reports. Feature modules add their checks (e.g. routing loaded) with `register`. */
@Injectable()
export class ReadinessService {
  private shuttingDown = false;
  private readonly checks = new Map<string, Check>();

  constructor(prisma: PrismaService, nats: NatsConnectionService) {
    this.checks.set('database', () => prisma.ping());
    if (nats.enabled) this.checks.set('nats', () => nats.isConnected);
  }

  register(name: string, check: Check): void {
    this.checks.set(name, check);
  }

  beginShutdown(): void {
    this.shuttingDown = true;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  async evaluate(): Promise<{ ready: boolean; checks: Record<string, 'ok' | 'failing'> }> {
    const results: Record<string, 'ok' | 'failing'> = {};
    if (this.shuttingDown) results.shutdown = 'failing';
    const entries = [...this.checks.entries()];
    const outcomes = await Promise.all(entries.map(async ([, check]) => Promise.resolve(check()).catch(() => false)));
    entries.forEach(([name], index) => (results[name] = outcomes[index] ? 'ok' : 'failing'));
    return { ready: !this.shuttingDown && outcomes.every(Boolean), checks: results };
  }
}
