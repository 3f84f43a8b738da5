import { Body, Controller, Delete, Get, HttpCode, Injectable, Param, Patch, Post } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { Requires } from '../authz/auth-declaration';
import { AppError } from '../common/app-error';
import { ZodValidationPipe } from '../common/zod-validation.pipe';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation } from '../database/transaction';
import type { Right } from '../generated/prisma/client';

export interface RightView {
  key: string;
  description: string | null;
  built_in: boolean;
}

const view = (right: Right): RightView => ({ key: right.key, description: right.description, built_in: right.builtIn });

@Injectable()
export class RightsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly audit: AuditService,
  ) {}

  async list(): Promise<{ items: RightView[]; next_cursor: null }> {
    return { items: (await this.prisma.right.findMany({ orderBy: { key: 'asc' } })).map(view), next_cursor: null };
  }

  async create(input: { key: string; description?: string }): Promise<RightView> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const right = await tx.right.create({ data: { key: input.key, description: input.description ?? null } });
        await this.audit.record(tx, {
          action: 'platform.right.create',
          target: { type: 'right', id: right.key },
          changes: { description: right.description },
        });
        return view(right);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new AppError('conflict', { detail: 'This right exists.' });
      throw error;
    }
  }

  async update(key: string, input: { description?: string }): Promise<RightView> {
    return this.prisma.$transaction(async (tx) => {
      if ((await tx.right.findUnique({ where: { key } })) === null) throw new AppError('not_found');
      const right = await tx.right.update({ where: { key }, data: { description: input.description } });
      await this.audit.record(tx, {
        action: 'platform.right.update',
        target: { type: 'right', id: key },
        changes: { description: right.description },
      });
      return view(right);
    });
  }

  /** Built-in rights stay; a right still granted by a role cannot go (the role would grant nothing visible). */
  async delete(key: string): Promise<void> {
    await this.prisma.$transaction(async (tx) => {
      const right = await tx.right.findUnique({ where: { key } });
      if (right === null) throw new AppError('not_found');
      if (right.builtIn) throw new AppError('conflict', { detail: 'Built-in rights cannot be deleted.' });
      const usedBy = await tx.$queryRaw<Array<{ n: number }>>`
        SELECT count(*)::int AS n FROM roles r, unnest(r.grants) AS g WHERE g = ${key} OR g LIKE ${`${key}:%`}`;
      if ((usedBy[0]?.n ?? 0) > 0) throw new AppError('conflict', { detail: 'A role still grants this right.' });
      await tx.right.delete({ where: { key } });
      await this.audit.record(tx, { action: 'platform.right.delete', target: { type: 'right', id: key } });
    });
  }
}

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
