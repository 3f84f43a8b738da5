import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Logger } from 'pino';
import { AuditService } from '../audit/audit.service';
import { PlatformAdminsService } from './platform-admins.service';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import { ClusterEventBus } from '../messaging/cluster-event-bus';
import { LOGGER } from '../observability/logger';
import { normalizeEmail } from '../identity/email';
import { PasswordHasher } from '../identity/password-hasher';
import { assertPasswordAllowed } from '../identity/password-policy';
import { UserRepository } from '../identity/user.repository';

/** pg_advisory_xact_lock key: two replicas booting together create the admin once. */
const BOOTSTRAP_LOCK = 0x626f6f74;

export interface CreatedAdmin {
  userId: string;
  /** a new user was created (otherwise an existing one was promoted) */
  userCreated: boolean;
  /** the password was set (a new user, or an existing one without a password) */
  passwordSet: boolean;
  /** platform_admin was granted now (false: the user held it already) */
  granted: boolean;
}

/** BOOTSTRAP_ADMIN_EMAIL/PASSWORD: if no platform admin exists, make this user one (idempotent). */
@Injectable()
export class BootstrapAdminService implements OnApplicationBootstrap {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly hasher: PasswordHasher,
    private readonly platformAdmins: PlatformAdminsService,
    private readonly audit: AuditService,
    private readonly events: ClusterEventBus,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.BOOTSTRAP_ADMIN_EMAIL === undefined || this.config.BOOTSTRAP_ADMIN_PASSWORD === undefined) return;
    const email = normalizeEmail(this.config.BOOTSTRAP_ADMIN_EMAIL);
    const passwordHash = await this.hasher.hash(this.config.BOOTSTRAP_ADMIN_PASSWORD);
    const created = await this.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`;
      if ((await this.platformAdmins.countIn(tx)) > 0) return undefined;
      const existing = await this.users.findByEmailWithPassword(tx, email);
      const user = existing ?? (await this.users.createWithPassword(tx, { email, passwordHash, emailVerified: true }));
      if (existing !== null && existing.password === null) await this.users.setPasswordHash(tx, user.id, passwordHash);
      await this.platformAdmins.grant(tx, user.id);
      await this.audit.record(tx, {
        action: 'iam.bootstrap_admin',
        actor: { principalId: null, principalType: 'system' },
        target: { type: 'user', id: user.id },
        changes: { bootstrap: true },
      });
      return user.id;
    });
    if (created !== undefined) {
      this.logger.info({ user_id: created }, 'bootstrap platform admin created');
      await this.events.publish('authz.changed', { principalIds: [created] });
    }
  }

  /**
   * `cli create-admin`: makes this email a platform admin whether or not admins exist. A new user
   * gets the password (checked against the password policy); an existing user keeps theirs, and
   * one without a password gets this one. Audited as the system actor.
   */
  async createAdmin(rawEmail: string, password: string): Promise<CreatedAdmin> {
    const email = normalizeEmail(rawEmail);
    assertPasswordAllowed(password, email, 'password');
    const passwordHash = await this.hasher.hash(password);
    const result = await this.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`;
      const existing = await this.users.findByEmailWithPassword(tx, email);
      const user = existing ?? (await this.users.createWithPassword(tx, { email, passwordHash, emailVerified: true }));
      const passwordSet = existing === null || existing.password === null;
      if (existing !== null && existing.password === null) await this.users.setPasswordHash(tx, user.id, passwordHash);
      const granted = !(await this.platformAdmins.isAdmin(tx, user.id));
      if (granted) await this.platformAdmins.grant(tx, user.id);
      await this.audit.record(tx, {
        action: 'iam.admin.create',
        actor: { principalId: null, principalType: 'system' },
        target: { type: 'user', id: user.id },
        // ids and flags only: the email is the user's (target.id), not the trail's to keep
        changes: {
          user_created: existing === null,
          password_set: passwordSet,
          role_granted: granted ? 'platform_admin' : undefined,
        },
      });
      return { userId: user.id, userCreated: existing === null, passwordSet, granted };
    });
    if (result.granted) await this.events.publish('authz.changed', { principalIds: [result.userId] });
    return result;
  }
}
