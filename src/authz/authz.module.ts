import { Global, Module } from '@nestjs/common';
import { PlatformAdminsService } from './platform-admins.service';

@Global()
@Module({ providers: [PlatformAdminsService], exports: [PlatformAdminsService] })
export class AuthzModule {}
