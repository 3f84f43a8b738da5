import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { RecentAuthentication, Requires } from '../common/auth-declaration';
import { pageQuery, pageSchema, type Page } from '../common/pagination';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { emailField } from '../identity/email';
import { passwordField } from '../identity/password-policy';
import { adminScope } from '../authz/admin-scope';
import { UserCredentialsAdminService } from './user-credentials-admin.service';
import { UserMfaAdminService } from './user-mfa-admin.service';
import { adminSessionListSchema, UserSessionsAdminService, type AdminSessionList } from './user-sessions-admin.service';
import { UserStatusAdminService } from './user-status-admin.service';
import { adminUserSchema, UsersAdminService, type AdminUserView } from './users-admin.service';

const listQuery = pageQuery.extend({
  email: z.string().max(320).optional(),
  status: z.enum(['active', 'disabled']).optional(),
  tenant_id: z.string().max(63).optional(),
});
const createBody = z.object({
  email: emailField,
  password: passwordField.optional(),
  display_name: z.string().trim().min(1).max(200).optional(),
});
const updateBody = z.object({ email: emailField.optional(), display_name: z.string().trim().min(1).max(200).nullable().optional() });
const passwordBody = z.object({ password: passwordField });

@ApiTags('admin-users')
@Controller('admin/users')
export class UsersController {
  constructor(
    private readonly users: UsersAdminService,
    private readonly status: UserStatusAdminService,
    private readonly credentials: UserCredentialsAdminService,
    private readonly mfa: UserMfaAdminService,
    private readonly userSessions: UserSessionsAdminService,
  ) {}

  @Requires('iam.users.read', { tenant: 'optional' })
  @Get()
  @ApiOkResponse({ standardSchema: pageSchema(adminUserSchema) })
  @ApiOperation({ summary: 'List users (in a tenant scope: the users assigned there)' })
  list(
    @Query({ schema: listQuery, pipes: [new ZodValidationPipe(listQuery)] }) query: z.infer<typeof listQuery>,
    @Req() request: FastifyRequest,
  ): Promise<Page<AdminUserView>> {
    return this.users.list(
      adminScope(request),
      { email: query.email, status: query.status, tenantId: query.tenant_id },
      query.limit,
      query.cursor,
    );
  }

  @Requires('iam.users.write', { tenant: 'optional' })
  @Post()
  @HttpCode(201)
  @ApiCreatedResponse({ standardSchema: adminUserSchema })
  @ApiOperation({ summary: 'Create a user (in a tenant scope: assigned tenant_member there)' })
  create(
    @Body({ schema: createBody, pipes: [new ZodValidationPipe(createBody)] }) body: z.infer<typeof createBody>,
    @Req() request: FastifyRequest,
  ): Promise<AdminUserView> {
    return this.users.create(adminScope(request), { email: body.email, password: body.password, displayName: body.display_name });
  }

  @Requires('iam.users.read', { tenant: 'optional' })
  @Get(':id')
  @ApiOkResponse({ standardSchema: adminUserSchema })
  @ApiOperation({ summary: 'Get a user' })
  get(@Param('id') id: string, @Req() request: FastifyRequest): Promise<AdminUserView> {
    return this.users.get(adminScope(request), id);
  }

  @Requires('iam.users.write', { tenant: 'optional' })
  @Patch(':id')
  @ApiOkResponse({ standardSchema: adminUserSchema })
  @ApiOperation({ summary: 'Change a user’s email or display name' })
  update(
    @Param('id') id: string,
    @Body({ schema: updateBody, pipes: [new ZodValidationPipe(updateBody)] }) body: z.infer<typeof updateBody>,
    @Req() request: FastifyRequest,
  ): Promise<AdminUserView> {
    return this.users.update(adminScope(request), id, { email: body.email, displayName: body.display_name });
  }

  @Requires('iam.users.write', { tenant: 'optional' })
  @Delete(':id')
  @RecentAuthentication()
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a user; signs it out everywhere' })
  @ApiNoContentResponse({ description: 'deleted' })
  async delete(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.status.delete(adminScope(request), id);
  }

  @Requires('iam.users.write', { tenant: 'optional' })
  @Post(':id/disable')
  @HttpCode(200)
  @ApiOkResponse({ standardSchema: adminUserSchema })
  @ApiOperation({ summary: 'Disable a user; signs it out everywhere' })
  disable(@Param('id') id: string, @Req() request: FastifyRequest): Promise<AdminUserView> {
    return this.status.setStatus(adminScope(request), id, false);
  }

  @Requires('iam.users.write', { tenant: 'optional' })
  @Post(':id/enable')
  @HttpCode(200)
  @ApiOkResponse({ standardSchema: adminUserSchema })
  @ApiOperation({ summary: 'Enable a disabled user' })
  enable(@Param('id') id: string, @Req() request: FastifyRequest): Promise<AdminUserView> {
    return this.status.setStatus(adminScope(request), id, true);
  }

  @Requires('iam.users.write', { tenant: 'optional' })
  @Post(':id/unlock')
  @HttpCode(204)
  @ApiOperation({ summary: 'Clear the sign-in lockout counters of a user' })
  @ApiNoContentResponse({ description: 'unlocked' })
  async unlock(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.credentials.unlock(adminScope(request), id);
  }

  @Requires('iam.users.write', { tenant: 'optional' })
  @Put(':id/password')
  @RecentAuthentication()
  @HttpCode(204)
  @ApiOperation({ summary: 'Set a user’s password; signs it out everywhere' })
  @ApiNoContentResponse({ description: 'password set' })
  async setPassword(
    @Param('id') id: string,
    @Body({ schema: passwordBody, pipes: [new ZodValidationPipe(passwordBody)] }) body: z.infer<typeof passwordBody>,
    @Req() request: FastifyRequest,
  ): Promise<void> {
    await this.credentials.setPassword(adminScope(request), id, body.password);
  }

  @Requires('iam.users.write', { tenant: 'optional' })
  @Delete(':id/password')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a user’s password (refused when it is the last sign-in method)' })
  @ApiNoContentResponse({ description: 'password removed' })
  async removePassword(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.credentials.removePassword(adminScope(request), id);
  }

  @Requires('iam.users.read', { tenant: 'optional' })
  @Get(':id/sessions')
  @ApiOperation({ summary: 'List a user’s live sessions' })
  @ApiOkResponse({ standardSchema: adminSessionListSchema })
  sessions(@Param('id') id: string, @Req() request: FastifyRequest): Promise<AdminSessionList> {
    return this.userSessions.listSessions(adminScope(request), id);
  }

  @Requires('iam.sessions.revoke', { tenant: 'optional' })
  @Post(':id/sessions/revoke')
  @RecentAuthentication()
  @HttpCode(204)
  @ApiOperation({ summary: 'Sign a user out everywhere' })
  @ApiNoContentResponse({ description: 'sessions revoked' })
  async revokeSessions(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.userSessions.revokeSessions(adminScope(request), id);
  }

  @Requires('iam.mfa.reset', { tenant: 'optional' })
  @Post(':id/mfa/reset')
  @RecentAuthentication()
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a user’s TOTP and recovery codes' })
  @ApiNoContentResponse({ description: 'MFA reset' })
  async resetMfa(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.mfa.resetMfa(adminScope(request), id);
  }

  @Requires('iam.mfa.reset', { tenant: 'optional' })
  @Post(':id/recovery-codes/revoke')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke a user’s recovery codes' })
  @ApiNoContentResponse({ description: 'codes revoked' })
  async revokeRecoveryCodes(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.mfa.revokeRecoveryCodes(adminScope(request), id);
  }
}
