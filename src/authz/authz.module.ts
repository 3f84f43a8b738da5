import { Global, Module } from '@nestjs/common';
import { AssignmentRepository } from './assignment.repository';
import { BootstrapAdminService } from './bootstrap-admin.service';
import { AuthorizationCache } from './authorization-cache.service';
import { PlatformAdminsService } from './platform-admins.service';
import { PrincipalVisibility } from './principal-visibility';
import { PolicyHook } from './policy-hook.service';
import { RequestAuthorizer } from './request-authorizer.service';
import { RightRepository } from './right.repository';
import { RoleRepository } from './role.repository';
import { TenantRepository } from './tenant.repository';

@Global()
@Module({
  providers: [
    BootstrapAdminService,
    PlatformAdminsService,
    RequestAuthorizer,
    PolicyHook,
    AssignmentRepository,
    RoleRepository,
    RightRepository,
    TenantRepository,
    AuthorizationCache,
    PrincipalVisibility,
  ],
  exports: [
    PlatformAdminsService,
    RequestAuthorizer,
    PolicyHook,
    AssignmentRepository,
    RoleRepository,
    RightRepository,
    TenantRepository,
    AuthorizationCache,
    PrincipalVisibility,
  ],
})
export class AuthzModule {}
