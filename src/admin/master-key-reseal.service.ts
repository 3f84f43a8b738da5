import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { AuditService } from '../audit/audit.service';
import { OidcStateRepository } from '../authn/oidc/oidc-state.repository';
import { OIDC_STATE_PURPOSE } from '../authn/oidc/oidc-authorization.service';
import { TOTP_SECRET_PURPOSE } from '../authn/mfa/second-factor.service';
import { TotpCredentialRepository } from '../authn/mfa/totp-credential.repository';
import type { SealedColumn } from '../common/sealed-column';
import { SecretBox } from '../common/secret-box';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import { LOGGER } from '../observability/logger';
import { REFRESH_REPLAY_PURPOSE } from '../session/session.service';
import { SessionRepository } from '../session/session.repository';
import { SIGNING_KEY_PURPOSE } from '../session/signing-key.service';
import { SigningKeyRepository } from '../session/signing-key.repository';

/** Rows read and re-sealed per page: each page is a short read plus one compare-and-set per row. */
const PAGE_SIZE = 200;

/**
 * Moves every value sealed under a MASTER_KEY_PREVIOUS key to the current MASTER_KEY, so the
 * previous key can then be dropped. Idempotent (values already under the current key are left
 * alone) and safe while both replicas run: each write is a compare-and-set on the sealed value,
 * so a row changed concurrently (a rotated refresh token, a re-enrolled TOTP) keeps its newer
 * value, which its writer sealed under the current key anyway.
 */
@Injectable()
export class MasterKeyResealService {
  private readonly columns: Array<{ name: string; column: SealedColumn }>;

  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
    signingKeys: SigningKeyRepository,
    totp: TotpCredentialRepository,
    sessions: SessionRepository,
    oidcStates: OidcStateRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    const db = this.prisma;
    this.columns = [
      {
        name: 'signing_keys',
        column: {
          purpose: SIGNING_KEY_PURPOSE,
          page: (after, limit) => signingKeys.sealedPage(after, limit),
          replace: (id, from, to) => signingKeys.replaceSealed(id, from, to),
        },
      },
      {
        name: 'totp_credentials',
        column: {
          purpose: TOTP_SECRET_PURPOSE,
          page: (after, limit) => totp.sealedPage(db, after, limit),
          replace: (id, from, to) => totp.replaceSealed(db, id, from, to),
        },
      },
      {
        name: 'refresh_tokens',
        column: {
          purpose: REFRESH_REPLAY_PURPOSE,
          page: (after, limit) => sessions.sealedSuccessorPage(db, after, limit),
          replace: (id, from, to) => sessions.replaceSealedSuccessor(db, id, from, to),
        },
      },
      {
        name: 'oidc_states',
        column: {
          purpose: OIDC_STATE_PURPOSE,
          page: (after, limit) => oidcStates.sealedPage(db, after, limit),
          replace: (id, from, to) => oidcStates.replaceSealed(db, id, from, to),
        },
      },
    ];
  }

  /** Re-seals everything still under a previous key; returns how many values moved, per table and in all. */
  async reseal(): Promise<{ resealed: number; tables: Record<string, number> }> {
    const tables: Record<string, number> = {};
    let resealed = 0;
    for (const { name, column } of this.columns) {
      const moved = await this.resealColumn(column);
      tables[name] = moved;
      resealed += moved;
    }
    await this.prisma.$transaction((tx) =>
      this.audit.record(tx, {
        action: 'platform.keys.master_reseal',
        target: { type: 'master_key', id: 'current' },
        changes: { resealed, tables },
      }),
    );
    this.logger.info({ resealed, tables }, 'sealed data moved to the current MASTER_KEY');
    return { resealed, tables };
  }

  private async resealColumn(column: SealedColumn): Promise<number> {
    const box = new SecretBox(this.config.MASTER_KEY, column.purpose, this.config.MASTER_KEY_PREVIOUS);
    let moved = 0;
    let after: string | undefined;
    for (;;) {
      const page = await column.page(after, PAGE_SIZE);
      if (page.length === 0) return moved;
      for (const value of page) {
        if (!box.needsReseal(value.sealed)) continue;
        // a value no configured key opens stops the re-seal: dropping it silently would lose a secret
        if (await column.replace(value.id, value.sealed, box.reseal(value.sealed))) moved += 1;
      }
      after = page[page.length - 1]?.id;
    }
  }
}
