import { ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Get, Header, HttpCode, Param, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../common/app-error';
import { Authenticated, Public } from '../common/auth-declaration';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import type { Principal } from '../session/principal';
import { AbuseLimiter } from './abuse-limiter.service';
import { SessionService } from '../session/session.service';
import { tokenResponseSchema, type TokenResponse } from '../session/token-response';
import { AccountService, meSchema, sessionListSchema, type Me, type SessionList } from './account.service';

const refreshBody = z.object({ refresh_token: z.string().min(1).max(512) });
// a malformed refresh token (too long, empty, not a string, missing) is refused like an unknown one
const malformedRefresh = () => new AppError('invalid_grant', { logReason: 'malformed refresh_token' });
const signoutBody = z.object({ refresh_token: z.string().max(512).optional() });

function principalOf(request: FastifyRequest): Principal {
  // the guard sets it on every @Authenticated route
  return request.principal!;
}

@ApiTags('account')
@Controller('v1/auth')
export class AccountController {
  constructor(
    private readonly account: AccountService,
    private readonly sessions: SessionService,
    private readonly limiter: AbuseLimiter,
  ) {}

  @Public()
  @Post('refresh')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOkResponse({ standardSchema: tokenResponseSchema })
  @ApiOperation({ summary: 'Rotate a refresh token for a new token pair (a reused token revokes its session)' })
  async refresh(
    @Body({ schema: refreshBody, pipes: [new ZodValidationPipe(refreshBody, malformedRefresh)] }) body: z.infer<typeof refreshBody>,
    @Req() request: FastifyRequest,
  ): Promise<TokenResponse> {
    try {
      return await this.sessions.rotate(body.refresh_token);
    } catch (error) {
      // only failed refreshes count toward AUTH_IP_LIMIT (CONTRACT §4): beyond it they are 429
      if (error instanceof AppError && error.code === 'invalid_grant') await this.limiter.consumeIp(request.ctx.clientIp);
      throw error;
    }
  }

  @Authenticated()
  @Post('signout')
  @HttpCode(204)
  @ApiOperation({ summary: 'Sign out: end the current session' })
  @ApiNoContentResponse({ description: 'session ended' })
  async signout(
    @Body({ schema: signoutBody, pipes: [new ZodValidationPipe(signoutBody)] }) _body: z.infer<typeof signoutBody>,
    @Req() request: FastifyRequest,
  ): Promise<void> {
    await this.account.signout(principalOf(request));
  }

  @Authenticated()
  @Get('me')
  @ApiOperation({ summary: 'The signed-in user, tenant memberships and MFA state' })
  @ApiOkResponse({ standardSchema: meSchema })
  me(@Req() request: FastifyRequest): Promise<Me> {
    return this.account.me(principalOf(request));
  }

  @Authenticated()
  @Get('sessions')
  @ApiOperation({ summary: 'The caller’s live sessions' })
  @ApiOkResponse({ standardSchema: sessionListSchema })
  listSessions(@Req() request: FastifyRequest): Promise<SessionList> {
    return this.account.listSessions(principalOf(request));
  }

  @Authenticated()
  @Delete('sessions/:id')
  @HttpCode(204)
  @ApiOperation({ summary: 'End one of the caller’s sessions' })
  @ApiNoContentResponse({ description: 'session ended' })
  async revokeSession(@Param('id') id: string, @Req() request: FastifyRequest): Promise<void> {
    await this.account.revokeOwnSession(principalOf(request), id);
  }
}
