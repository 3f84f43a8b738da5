import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { Public } from '../../common/auth-declaration';
import { ACCOUNT_PAGE_CSP, RESET_PASSWORD_PAGE, VERIFY_EMAIL_PAGE } from './account-pages';

/**
 * The pages the default mail links open (`/account/verify-email?token=…`,
 * `/account/reset-password?token=…`). GET only shows the page; its button POSTs to the API.
 */
@ApiExcludeController()
@Controller('account')
export class AccountPagesController {
  @Public()
  @Get('verify-email')
  @PageHeaders()
  verifyEmail(): string {
    return VERIFY_EMAIL_PAGE;
  }

  @Public()
  @Get('reset-password')
  @PageHeaders()
  resetPassword(): string {
    return RESET_PASSWORD_PAGE;
  }
}

/** The headers every account page carries: the token in its URL must not travel further. */
function PageHeaders(): MethodDecorator {
  const headers: Array<[string, string]> = [
    ['content-type', 'text/html; charset=utf-8'],
    ['content-security-policy', ACCOUNT_PAGE_CSP],
    ['referrer-policy', 'no-referrer'],
    ['cache-control', 'no-store'],
    ['x-content-type-options', 'nosniff'],
    ['x-frame-options', 'DENY'],
    ['cross-origin-opener-policy', 'same-origin'],
  ];
  return (target, key, descriptor) => {
    for (const [name, value] of headers) Header(name, value)(target, key, descriptor);
  };
}
