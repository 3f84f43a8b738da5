import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { z } from 'zod';
import { Requires } from '../common/auth-declaration';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { rightListSchema, rightSchema, RightsService, type RightList, type RightView } from './rights.service';

const keyField = z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/, 'must be a dotted lower-case key such as reports.export');
const createBody = z.object({ key: keyField, description: z.string().max(1000).optional() });
const updateBody = z.object({ description: z.string().max(1000).optional() });

@ApiTags('admin-rights')
@Controller('admin/rights')
export class RightsController {
  constructor(private readonly rights: RightsService) {}

  @Requires('iam.roles.read', { tenant: 'optional' })
  @Get()
  @ApiOperation({ summary: 'List rights (built-in and custom)' })
  @ApiOkResponse({ standardSchema: rightListSchema })
  list(): Promise<RightList> {
    return this.rights.list();
  }

  @Requires('platform.rights.write')
  @Post()
  @HttpCode(201)
  @ApiOperation({ summary: 'Create a custom right' })
  @ApiCreatedResponse({ standardSchema: rightSchema })
  create(@Body({ schema: createBody, pipes: [new ZodValidationPipe(createBody)] }) body: z.infer<typeof createBody>): Promise<RightView> {
    return this.rights.create(body);
  }

  @Requires('platform.rights.write')
  @Patch(':key')
  @ApiOperation({ summary: 'Describe a custom right' })
  @ApiOkResponse({ standardSchema: rightSchema })
  update(
    @Param('key') key: string,
    @Body({ schema: updateBody, pipes: [new ZodValidationPipe(updateBody)] }) body: z.infer<typeof updateBody>,
  ): Promise<RightView> {
    return this.rights.update(key, body);
  }

  @Requires('platform.rights.write')
  @Delete(':key')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a custom right no role grants' })
  @ApiNoContentResponse({ description: 'deleted' })
  async delete(@Param('key') key: string): Promise<void> {
    await this.rights.delete(key);
  }
}
