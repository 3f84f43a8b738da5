import { Body, Controller, Delete, Get, Param, Put } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
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
@ApiTags('admin-tenants')
@Controller('admin/tenants')
export class TenantLimitsController {
  constructor(private readonly limits: TenantLimitsService) {}

  @Requires('platform.tenants.write')
  @Get(':id/limits')
  @ApiOkResponse({ standardSchema: tenantLimitsSchema })
  @ApiOperation({ summary: 'A tenant’s traffic limits (its overrides and the values in force)' })
  get(@Param('id') id: string): Promise<TenantLimitsView> {
    return this.limits.get(id);
  }

  @Requires('platform.tenants.write')
  @Put(':id/limits')
  @ApiOkResponse({ standardSchema: tenantLimitsSchema })
  @ApiOperation({ summary: 'Set a tenant’s traffic-limit overrides' })
  put(
    @Param('id') id: string,
    @Body({ schema: tenantLimitsBody, pipes: [new ZodValidationPipe(tenantLimitsBody)] }) body: TenantLimitsBody,
  ): Promise<TenantLimitsView> {
    return this.limits.put(id, body);
  }

  @Requires('platform.tenants.write')
  @Delete(':id/limits')
  @ApiOkResponse({ standardSchema: tenantLimitsSchema })
  @ApiOperation({ summary: 'Remove a tenant’s traffic-limit overrides (back to the defaults)' })
  remove(@Param('id') id: string): Promise<TenantLimitsView> {
    return this.limits.remove(id);
  }
}
