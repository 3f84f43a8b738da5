import { Readable } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { z } from 'zod';
import { PrismaService } from '../database/prisma.service';
import { LOGGER } from '../observability/logger';
import { encodeAuditCursor } from './audit-query.dto';
import { auditRecordSchema, auditRecordView, chainBreak, CHAIN_START, type ChainPosition } from './audit-record';
import { AuditRepository, type AuditFilter } from './audit.repository';

export const auditPageSchema = z
  .object({
    items: z.array(auditRecordSchema),
    next_cursor: z.string().nullable().describe('pass as `cursor` for the next page; null on the last page'),
  })
  .meta({ id: 'AuditPage' });
export type AuditPage = z.infer<typeof auditPageSchema>;

export const chainVerificationSchema = z
  .object({
    ok: z.boolean(),
    checked: z.number().int().describe('records examined, up to and including the first bad one'),
    first_bad_seq: z.number().int().nullable().describe('seq of the first record whose seq, prev_hash link or hash does not check'),
  })
  .meta({ id: 'AuditChainVerification' });
export type ChainVerification = z.infer<typeof chainVerificationSchema>;

/** Rows per database round trip when exporting or verifying: memory stays flat whatever the trail's size. */
const BATCH_SIZE = 500;

/** The read side of the audit trail: list, NDJSON export, chain verification. */
@Injectable()
export class AuditTrailService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly records: AuditRepository,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Newest first (seq descending); the cursor continues below the last seq returned. */
  async list(filter: AuditFilter, page: { limit: number; cursor?: bigint }): Promise<AuditPage> {
    // one extra row tells whether another page exists, so the last page says so (next_cursor null)
    const rows = await this.records.findNewestFirst(this.prisma, filter, { limit: page.limit + 1, beforeSeq: page.cursor });
    const items = rows.slice(0, page.limit);
    const last = items.at(-1);
    return {
      items: items.map(auditRecordView),
      next_cursor: rows.length > page.limit && last !== undefined ? encodeAuditCursor(last.seq) : null,
    };
  }

  /**
   * Every matching record in chain order (seq ascending), one JSON document per line, read
   * from the database batch by batch as the client consumes the stream. The first batch is
   * read before anything is sent, so a failing database still answers with a problem document.
   */
  async exportNdjson(filter: AuditFilter, batchSize = BATCH_SIZE): Promise<Readable> {
    const first = await this.records.findInChainOrder(this.prisma, filter, 0n, batchSize);
    const { prisma, records, logger } = this;
    async function* lines(): AsyncGenerator<string> {
      let batch = first;
      try {
        while (batch.length > 0) {
          yield batch.map((row) => `${JSON.stringify(auditRecordView(row))}\n`).join('');
          if (batch.length < batchSize) return;
          batch = await records.findInChainOrder(prisma, filter, batch.at(-1)!.seq, batchSize);
        }
      } catch (error) {
        // headers are gone: the connection is cut, so the client sees a failed, not a short, export
        logger.error({ err: error }, 'audit export failed mid-stream');
        throw error;
      }
    }
    return Readable.from(lines(), { objectMode: false });
  }

  /**
   * Walks the whole chain in seq order and recomputes every hash from the stored fields.
   * Stops at the first record that does not check: everything after it is unverifiable.
   */
  async verify(batchSize = BATCH_SIZE): Promise<ChainVerification> {
    let position: ChainPosition = CHAIN_START;
    let checked = 0;
    for (;;) {
      const batch = await this.records.findInChainOrder(this.prisma, {}, position.seq, batchSize);
      for (const row of batch) {
        checked += 1;
        const broken = chainBreak(position, row);
        if (broken !== null) {
          this.logger.warn({ seq: row.seq.toString(), reason: broken, after_seq: position.seq.toString() }, 'audit chain broken');
          return { ok: false, checked, first_bad_seq: Number(row.seq) };
        }
        position = { seq: row.seq, hash: row.hash };
      }
      if (batch.length < batchSize) return { ok: true, checked, first_bad_seq: null };
    }
  }
}
