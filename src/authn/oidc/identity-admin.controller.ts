import { ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Controller, Delete, Get, HttpCode, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { adminScope } from '../../authz/admin-scope';
import { PrincipalVisibility } from '../../authz/principal-visibility';
import { Requires } from '../../common/auth-declaration';
import { AppError } from '../../common/app-error';
import { PrismaService } from '../../database/prisma.service';
import { UserRepository } from '../../identity/user.repository';
import { identityListSchema, identityView, IdentityLinkingService } from './identity-linking.service';
import { z } from 'zod';

/**
 * CONTRACT §6 identities of a user (`/admin/users/{id}/identities`). Lives beside the linking
 * rules it enforces; tenant admins see only users assigned in their tenant.
 */
@ApiTags('admin-users')
@Controller('admin/users/:id/identities')
export class IdentityAdminController {
  constructor(
    private readonly prisma: PrismaService,
    private readonly users: UserRepository,
    private readonly linking: IdentityLinkingService,
    private readonly visibility: PrincipalVisibility,
  ) {}

  @Requires('iam.users.read', { tenant: 'optional' })
  @Get()
  @ApiOperation({ summary: 'List a user’s linked external identities' })
  @ApiOkResponse({ standardSchema: identityListSchema })
  async list(@Param('id') userId: string, @Req() request: FastifyRequest): Promise<z.infer<typeof identityListSchema>> {
    if ((await this.users.findById(this.prisma, userId)) === null) throw new AppError('not_found');
    await this.visibility.requireVisible(this.prisma, adminScope(request), userId);
    return { items: (await this.linking.listForUser(userId)).map(identityView), next_cursor: null };
  }

  /** Refused with 409 when it is the user's last way to sign in. */
  @Requires('iam.users.write', { tenant: 'optional' })
  @Delete(':identityId')
  @HttpCode(204)
  @ApiOperation({ summary: 'Unlink an external identity (refused when it is the last sign-in method)' })
  @ApiNoContentResponse({ description: 'unlinked' })
  async unlink(@Param('id') userId: string, @Param('identityId') identityId: string, @Req() request: FastifyRequest): Promise<void> {
    await this.visibility.requireOwnedByTenant(this.prisma, adminScope(request), userId);
    await this.linking.unlink(userId, identityId);
  }
}
