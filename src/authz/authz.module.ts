import { Global, Module } from '@nestjs/common';
import { PlatformAdminsService } from './platform-admins.service';
import { RequestAuthorizer } from './request-authorizer.service';

@Global()
@Module({ providers: [PlatformAdminsService, RequestAuthorizer], exports: [PlatformAdminsService, RequestAuthorizer] })
export class AuthzModule {}
