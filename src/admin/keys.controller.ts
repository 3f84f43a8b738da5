import { Controller, HttpCode, Post } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { Requires } from '../common/auth-declaration';
import { SigningKeyService } from '../session/signing-key.service';
import { MasterKeyResealService } from './master-key-reseal.service';

@Controller('admin/keys')
export class KeysController {
  constructor(
    private readonly keys: SigningKeyService,
    private readonly audit: AuditService,
    private readonly reseals: MasterKeyResealService,
  ) {}

  /** Promotes the pre-published next key; the old one stays in JWKS until its tokens expired. */
  @Requires('platform.keys.rotate')
  @Post('rotate')
  @HttpCode(200)
  async rotate(): Promise<{ active_kid: string; retired_kid: string }> {
    const change = await this.keys.rotate((tx, rotated) =>
      this.audit.record(tx, {
        action: 'platform.keys.rotate',
        target: { type: 'signing_key', id: rotated.activated },
        changes: { retired_kid: rotated.retired },
      }),
    );
    return { active_kid: change.activated, retired_kid: change.retired };
  }

  /** Moves every sealed secret to the current MASTER_KEY, so MASTER_KEY_PREVIOUS can be dropped (CONTRACT §13). */
  @Requires('platform.keys.rotate')
  @Post('master/reseal')
  @HttpCode(200)
  async resealMasterKey(): Promise<{ resealed: number }> {
    const { resealed } = await this.reseals.reseal();
    return { resealed };
  }
}
