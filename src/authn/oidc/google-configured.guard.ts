import { Injectable, type CanActivate } from '@nestjs/common';
import { AppError } from '../../common/app-error';
import { GoogleOidcClient } from './google-oidc.client';

/**
 * Without a Google client the routes do not exist as far as callers can tell: 404 before any
 * body or query validation (guards run before pipes). The global auth guard still runs first.
 */
@Injectable()
export class GoogleConfiguredGuard implements CanActivate {
  constructor(private readonly client: GoogleOidcClient) {}

  canActivate(): boolean {
    if (!this.client.enabled) throw new AppError('not_found', { logReason: 'google sign-in is not configured' });
    return true;
  }
}
