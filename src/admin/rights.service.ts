import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { RightRepository } from '../authz/right.repository';
import { AppError } from '../common/app-error';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation } from '../database/transaction';
import type { Right } from '../generated/prisma/client';

export const rightSchema = z.object({ key: z.string(), description: z.string().nullable(), built_in: z.boolean() }).meta({ id: 'Right' });
export type RightView = z.infer<typeof rightSchema>;

export const rightListSchema = z.object({ items: z.array(rightSchema), next_cursor: z.null() }).meta({ id: 'RightList' });
export type RightList = z.infer<typeof rightListSchema>;

const view = (right: Right): RightView => ({ key: right.key, description: right.description, built_in: right.builtIn });

@Injectable()
export class RightsService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly rights: RightRepository,
    private readonly audit: AuditService,
  ) {}

  async list(): Promise<RightList> {
    return { items: (await this.rights.listAll(this.prisma)).map(view), next_cursor: null };
  }

  async create(input: { key: string; description?: string }): Promise<RightView> {
    try {
      return await this.prisma.$transaction(async (tx) => {
        const right = await this.rights.create(tx, { key: input.key, description: input.description ?? null });
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
      if ((await this.rights.findByKey(tx, key)) === null) throw new AppError('not_found');
      const right = await this.rights.updateDescription(tx, key, input.description);
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
      const right = await this.rights.findByKey(tx, key);
      if (right === null) throw new AppError('not_found');
      if (right.builtIn) throw new AppError('conflict', { detail: 'Built-in rights cannot be deleted.' });
      if ((await this.rights.countRolesGranting(tx, key)) > 0) {
        throw new AppError('conflict', { detail: 'A role still grants this right.' });
      }
      await this.rights.delete(tx, key);
      await this.audit.record(tx, { action: 'platform.right.delete', target: { type: 'right', id: key } });
    });
  }
}
