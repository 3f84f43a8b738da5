import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Controller, HttpCode, Post } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { RecentAuthentication, Requires } from '../common/auth-declaration';
import { SigningKeyService } from '../session/signing-key.service';
import { MasterKeyResealService } from './master-key-reseal.service';
import { z } from 'zod';

const rotationSchema = z.object({ active_kid: z.string(), retired_kid: z.string() }).meta({ id: 'KeyRotation' });
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

  /** Moves every sealed secret to the current MASTER_KEY, so MASTER_KEY_PREVIOUS can be dropped (CONTRACT §13). */
  @Requires('platform.keys.rotate')
  @Post('master/reseal')
  @HttpCode(200)
  @ApiOperation({ summary: 'Re-seal every stored secret under the current master key' })
  @ApiOkResponse({ standardSchema: resealSchema })
  async resealMasterKey(): Promise<z.infer<typeof resealSchema>> {
    const { resealed } = await this.reseals.reseal();
    return { resealed };
  }
}
