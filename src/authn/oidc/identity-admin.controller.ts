import { Controller, Delete, Get, HttpCode, Param } from '@nestjs/common';
import { Requires } from '../../authz/auth-declaration';
import { AppError } from '../../common/app-error';
import { PrismaService } from '../../database/prisma.service';
import { UserRepository } from '../../identity/user.repository';
import { identityView, IdentityLinkingService, type IdentityView } from './identity-linking.service';

/**
 * CONTRACT §6 identities of a user (`/admin/users/{id}/identities`). Lives beside the linking
 * rules it enforces until the admin user resource exists; platform scope only for now.
 */
@Controller('admin/users/:id/identities')
export class IdentityAdminController {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly linking: IdentityLinkingService,
  ) {}

  @Requires('iam.users.read')
  @Get()
  async list(@Param('id') userId: string): Promise<{ items: IdentityView[]; next_cursor: null }> {
    if ((await this.users.findById(this.prisma, userId)) === null) throw new AppError('not_found');
    return { items: (await this.linking.listForUser(userId)).map(identityView), next_cursor: null };
  }

  /** Refused with 409 when it is the user's last way to sign in. */
  @Requires('iam.users.write')
  @Delete(':identityId')
  @HttpCode(204)
  async unlink(@Param('id') userId: string, @Param('identityId') identityId: string): Promise<void> {
    await this.linking.unlink(userId, identityId);
  }
}
