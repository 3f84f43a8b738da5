import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { z } from 'zod';
import { Requires } from '../common/auth-declaration';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { RightsService, type RightView } from './rights.service';

const keyField = z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/, 'must be a dotted lower-case key such as reports.export');
const createBody = z.object({ key: keyField, description: z.string().max(1000).optional() });
const updateBody = z.object({ description: z.string().max(1000).optional() });

@Controller('admin/rights')
export class RightsController {
  constructor(private readonly rights: RightsService) {}

  @Requires('iam.roles.read', { tenant: 'optional' })
  @Get()
  list(): Promise<{ items: RightView[]; next_cursor: null }> {
    return this.rights.list();
  }

  @Requires('platform.rights.write')
  @Post()
  @HttpCode(201)
  create(@Body({ schema: createBody, pipes: [new ZodValidationPipe(createBody)] }) body: z.infer<typeof createBody>): Promise<RightView> {
    return this.rights.create(body);
  }

  @Requires('platform.rights.write')
  @Patch(':key')
  update(
    @Param('key') key: string,
    @Body({ schema: updateBody, pipes: [new ZodValidationPipe(updateBody)] }) body: z.infer<typeof updateBody>,
  ): Promise<RightView> {
    return this.rights.update(key, body);
  }

  @Requires('platform.rights.write')
  @Delete(':key')
  @HttpCode(204)
  async delete(@Param('key') key: string): Promise<void> {
    await this.rights.delete(key);
  }
}
