import { Global, Module } from '@nestjs/common';
import { AssignmentRepository } from './assignment.repository';
import { AuthorizationCache } from './authorization-cache.service';
import { PlatformAdminsService } from './platform-admins.service';
import { PrincipalVisibility } from './principal-visibility';
import { RequestAuthorizer } from './request-authorizer.service';

@Global()
@Module({
  providers: [PlatformAdminsService, RequestAuthorizer, AssignmentRepository, AuthorizationCache, PrincipalVisibility],
  exports: [PlatformAdminsService, RequestAuthorizer, AssignmentRepository, AuthorizationCache, PrincipalVisibility],
})
export class AuthzModule {}
