import { ApiFoundResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Get, Header, HttpCode, Inject, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Authenticated, Public } from '../../common/auth-declaration';
import { ZodValidationPipe } from '../../common/zod-validation.pipe';
import { APP_CONFIG, type AppConfig } from '../../config/config';
import type { Principal } from '../../session/principal';
import { clientInfo } from '../client-info';
import { BrowserBinding } from './browser-binding';
import { GoogleConfiguredGuard } from './google-configured.guard';
import { signInResultSchema, type SignInResult } from '../mfa/mfa-challenge.service';
import { GoogleOidcService, linkedResponseSchema, type LinkedResponse } from './google-oidc.service';
import { AuthIpLimited } from '../auth-ip-limit.guard';

const startBody = z.object({ return_to: z.string().min(1).max(2048).optional() });
const startQuery = z.object({ return_to: z.string().min(1).max(2048).optional() });
const exchangeBody = z.object({ login_code: z.string().min(1).max(512) });
// the provider's answer: `code` on success, `error` when the user cancelled or it refused
const callbackQuery = z.object({ state: z.string().min(1).max(512) });

const authorizationUrlSchema = z
  .object({ authorization_url: z.string().describe('send the browser here') })
  .meta({ id: 'AuthorizationUrl' });

function principalOf(request: FastifyRequest): Principal {
  // the guard sets it on every @Authenticated route
  return request.principal!;
}

/** The query string exactly as received; openid-client validates the response parameters itself. */
function rawQuery(request: FastifyRequest): string {
  const index = request.url.indexOf('?');
  return index === -1 ? '' : request.url.slice(index);
}

@ApiTags('google-sign-in')
@Controller('v1/auth/oidc')
@UseGuards(GoogleConfiguredGuard)
export class GoogleOidcController {
  private readonly binding: BrowserBinding;

  constructor(
    private readonly google: GoogleOidcService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.binding = new BrowserBinding(config.PUBLIC_URL);
  }

  @Public()
  @AuthIpLimited()
  @Post('google/start')
  @HttpCode(200)
  @ApiOperation({ summary: 'Start Google sign-in: the authorization URL (sets the browser-binding cookie)' })
  @ApiOkResponse({ standardSchema: authorizationUrlSchema })
  async start(
    @Body({ schema: startBody, pipes: [new ZodValidationPipe(startBody)] }) body: z.infer<typeof startBody>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<z.infer<typeof authorizationUrlSchema>> {
    const binding = this.binding.valueFor(request);
    const answer = await this.google.start(body.return_to, binding);
    this.binding.set(reply.header('cache-control', 'no-store'), binding);
    return answer;
  }

  /**
   * The same start as a top-level navigation (302 to Google), for front ends on another site:
   * a cookie set on a cross-site fetch would not be stored, one set on a navigation is.
   */
  @Public()
  @AuthIpLimited()
  @Get('google/start')
  @ApiOperation({ summary: 'Start Google sign-in as a top-level navigation: 302 to Google' })
  @ApiFoundResponse({
    description: 'to Google',
    headers: { location: { description: 'the authorization URL', schema: { type: 'string' } } },
  })
  async startByNavigation(
    @Query({ schema: startQuery, pipes: [new ZodValidationPipe(startQuery)] }) query: z.infer<typeof startQuery>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<undefined> {
    const binding = this.binding.valueFor(request);
    const { authorization_url } = await this.google.start(query.return_to, binding);
    this.binding.set(reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer'), binding);
    void reply.status(302).header('location', authorization_url);
    return undefined;
  }

  @Authenticated()
  @Post('google/link/start')
  @HttpCode(200)
  @ApiOperation({ summary: 'Start linking a Google account to the signed-in user' })
  @ApiOkResponse({ standardSchema: authorizationUrlSchema })
  async linkStart(
    @Body({ schema: startBody, pipes: [new ZodValidationPipe(startBody)] }) body: z.infer<typeof startBody>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<z.infer<typeof authorizationUrlSchema>> {
    const binding = this.binding.valueFor(request);
    const answer = await this.google.startLink(principalOf(request), body.return_to, binding);
    this.binding.set(reply.header('cache-control', 'no-store'), binding);
    return answer;
  }

  /** Browser redirect target: 302 to return_to, or the JSON outcome when the flow has none. */
  @Public()
  @AuthIpLimited()
  @Get('google/callback')
  @ApiOperation({ summary: 'Google’s redirect target: 302 to return_to, or the JSON outcome when the flow has none' })
  @ApiFoundResponse({
    description: 'to return_to, with a login_code or an error in the fragment',
    headers: { location: { description: 'return_to with the outcome in the fragment', schema: { type: 'string' } } },
  })
  @ApiOkResponse({
    standardSchema: z.union([signInResultSchema, linkedResponseSchema]),
    description: 'the outcome, when the flow has no return_to',
  })
  async callback(
    @Query({ schema: callbackQuery, pipes: [new ZodValidationPipe(callbackQuery)] }) query: z.infer<typeof callbackQuery>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SignInResult | LinkedResponse | undefined> {
    const outcome = await this.google.callback(query.state, rawQuery(request), this.binding.read(request), clientInfo(request));
    // tokens and codes must not linger in caches or be leaked by a Referer
    void reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
    if (outcome.kind === 'redirect') {
      void reply.status(302).header('location', outcome.location);
      return undefined;
    }
    void reply.status(200);
    return outcome.body;
  }

  @Public()
  @AuthIpLimited()
  @Post('exchange')
  // carries a token, code or secret: no cache may keep it (CONTRACT §4)
  @Header('cache-control', 'no-store')
  @HttpCode(200)
  @ApiOperation({ summary: 'Exchange a one-time login_code (from the callback’s fragment) for tokens or MFA-pending' })
  @ApiOkResponse({ standardSchema: signInResultSchema })
  exchange(
    @Body({ schema: exchangeBody, pipes: [new ZodValidationPipe(exchangeBody)] }) body: z.infer<typeof exchangeBody>,
    @Req() request: FastifyRequest,
  ): Promise<SignInResult> {
    return this.google.exchange(body.login_code, clientInfo(request));
  }
}
