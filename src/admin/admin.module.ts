import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module';
import { MessagingModule } from '../messaging/messaging.module';
import { AuditModule } from '../audit/audit.module';
import { IdentityModule } from '../identity/identity.module';
import { SessionModule } from '../session/session.module';
import { AuthzModule } from '../authz/authz.module';
import { AuthnModule } from '../authn/authn.module';
import { AssignmentsController } from './assignments.controller';
import { AssignmentsService } from './assignments.service';
import { EscalationCheck } from './escalation-check';
import { ExplainController } from './explain.controller';
import { KeysController } from './keys.controller';
import { RightsController } from './rights.controller';
import { RightsService } from './rights.service';
import { RolesController } from './roles.controller';
import { RolesService } from './roles.service';
import { ServiceAccountsController } from './service-accounts.controller';
import { ServiceAccountsService } from './service-accounts.service';
import { TenantsController } from './tenants.controller';
import { TenantsService } from './tenants.service';
import { UserCredentialsAdminService } from './user-credentials-admin.service';
import { UserMfaAdminService } from './user-mfa-admin.service';
import { UserSessionsAdminService } from './user-sessions-admin.service';
import { UserStatusAdminService } from './user-status-admin.service';
import { UsersAdminService } from './users-admin.service';
import { UsersController } from './users.controller';
import { MasterKeyResealService } from './master-key-reseal.service';

/** The admin IAM API (CONTRACT §6): one controller per resource. */
@Module({
  imports: [DatabaseModule, MessagingModule, AuditModule, IdentityModule, SessionModule, AuthzModule, AuthnModule],
  controllers: [
    KeysController,
    TenantsController,
    UsersController,
    RightsController,
    RolesController,
    AssignmentsController,
    ServiceAccountsController,
    ExplainController,
  ],
  providers: [
    MasterKeyResealService,
    EscalationCheck,
    TenantsService,
    UsersAdminService,
    UserStatusAdminService,
    UserCredentialsAdminService,
    UserMfaAdminService,
    UserSessionsAdminService,
    RightsService,
    RolesService,
    AssignmentsService,
    ServiceAccountsService,
  ],
})
export class AdminModule {}
