import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Controller, HttpCode, Param, Post } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { RecentAuthentication, Requires } from '../common/auth-declaration';
import { SigningKeyService } from '../session/signing-key.service';
import { MasterKeyResealService } from './master-key-reseal.service';
import { z } from 'zod';

const rotationSchema = z.object({ active_kid: z.string(), retired_kid: z.string() }).meta({ id: 'KeyRotation' });
const revocationSchema = z
  .object({ revoked_kid: z.string(), active_kid: z.string().describe('the key signing from now on') })
  .meta({ id: 'KeyRevocation' });
const resealSchema = z
  .object({ resealed: z.number().int().describe('sealed values moved to the current key') })
  .meta({ id: 'MasterKeyReseal' });

@ApiTags('admin-keys')
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
  @RecentAuthentication()
  @HttpCode(200)
  @ApiOperation({ summary: 'Rotate the token-signing key (the next key becomes active)' })
  @ApiOkResponse({ standardSchema: rotationSchema })
  async rotate(): Promise<z.infer<typeof rotationSchema>> {
    const change = await this.keys.rotate((tx, rotated) =>
      this.audit.record(tx, {
        action: 'platform.keys.rotate',
        target: { type: 'signing_key', id: rotated.activated },
        changes: { retired_kid: rotated.retired },
      }),
    );
    return { active_kid: change.activated, retired_kid: change.retired };
  }

  /** Emergency: stop publishing and accepting a key now (CONTRACT §6); tokens it signed stop on every replica. */
  @Requires('platform.keys.rotate')
  @Post(':kid/revoke')
  @RecentAuthentication()
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke a signing key at once (emergency); revoking the active key promotes the next one' })
  @ApiOkResponse({ standardSchema: revocationSchema })
  async revoke(@Param('kid') kid: string): Promise<z.infer<typeof revocationSchema>> {
    const change = await this.keys.revoke(kid, (tx, revoked) =>
      this.audit.record(tx, {
        action: 'platform.keys.revoke',
        target: { type: 'signing_key', id: revoked.revoked },
        changes: { active_kid: revoked.active },
      }),
    );
    return { revoked_kid: change.revoked, active_kid: change.active };
  }

  /** Moves every sealed secret to the current MASTER_KEY, so MASTER_KEY_PREVIOUS can be dropped (CONTRACT §13). */
  @Requires('platform.keys.rotate')
  @Post('master/reseal')
  @RecentAuthentication()
  @HttpCode(200)
  @ApiOperation({ summary: 'Re-seal every stored secret under the current master key' })
  @ApiOkResponse({ standardSchema: resealSchema })
  async resealMasterKey(): Promise<z.infer<typeof resealSchema>> {
    const { resealed } = await this.reseals.reseal();
    return { resealed };
  }
}
