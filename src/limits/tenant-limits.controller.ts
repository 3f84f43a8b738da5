import { Body, Controller, Delete, Get, Param, Put } from '@nestjs/common';
import { ApiOkResponse } from '@nestjs/swagger';
import { Requires } from '../common/auth-declaration';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import {
  TenantLimitsService,
  tenantLimitsBody,
  tenantLimitsSchema,
  type TenantLimitsBody,
  type TenantLimitsView,
} from './tenant-limits.service';

/** `GET/PUT/DELETE /admin/tenants/{id}/limits` (CONTRACT §9): platform.tenants.write at platform scope. */
@Controller('admin/tenants')
export class TenantLimitsController {
  constructor(private readonly limits: TenantLimitsService) {}

  @Requires('platform.tenants.write')
  @Get(':id/limits')
  @ApiOkResponse({ standardSchema: tenantLimitsSchema })
  get(@Param('id') id: string): Promise<TenantLimitsView> {
    return this.limits.get(id);
  }

  @Requires('platform.tenants.write')
  @Put(':id/limits')
  @ApiOkResponse({ standardSchema: tenantLimitsSchema })
  put(
    @Param('id') id: string,
    @Body({ schema: tenantLimitsBody, pipes: [new ZodValidationPipe(tenantLimitsBody)] }) body: TenantLimitsBody,
  ): Promise<TenantLimitsView> {
    return this.limits.put(id, body);
  }

  @Requires('platform.tenants.write')
  @Delete(':id/limits')
  @ApiOkResponse({ standardSchema: tenantLimitsSchema })
  remove(@Param('id') id: string): Promise<TenantLimitsView> {
    return this.limits.remove(id);
  }
}
