import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module';
import { MessagingModule } from '../messaging/messaging.module';
import { AuditModule } from '../audit/audit.module';
import { IdentityModule } from '../identity/identity.module';
import { SessionModule } from '../session/session.module';
import { AssignmentRepository } from './assignment.repository';
import { BootstrapAdminService } from './bootstrap-admin.service';
import { AuthorizationCache } from './authorization-cache.service';
import { PlatformAdminsService } from './platform-admins.service';
import { PrincipalVisibility } from './principal-visibility';
import { PolicyHook } from './policy-hook.service';
import { RequestAuthorizer } from './request-authorizer.service';
import { StepUpService } from './step-up.service';
import { RightRepository } from './right.repository';
import { RoleRepository } from './role.repository';
import { TenantRepository } from './tenant.repository';

@Module({
  imports: [DatabaseModule, MessagingModule, AuditModule, IdentityModule, SessionModule],
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
    StepUpService,
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
    StepUpService,
  ],
})
export class AuthzModule {}
