import { Injectable } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { PrismaService } from '../database/prisma.service';
import { RateLimitCounterRepository } from './rate-limit-counter.repository';

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/**
 * The throttler storage of CONTRACT §4's exact limits: the shared PostgreSQL counters
 * (`rate_limit_counters`, one atomic upsert that both counts and reports), so every replica
 * counts into the same row and parallel calls on several replicas let exactly `limit` through.
 * A fixed window of `ttl` ms per key; `blockDuration` has no meaning here (a key is blocked until
 * its window ends). Refused calls are counted too, as §4's counters always were.
 */
@Injectable()
export class ExactCounterStorage implements ThrottlerStorage {
  constructor(
    private readonly prisma: PrismaService,
    private readonly counters: RateLimitCounterRepository,
  ) {}

  async increment(key: string, ttl: number, limit: number): Promise<ThrottlerStorageRecord> {
    const { count, retryAfterSeconds } = await this.counters.hit(this.prisma, key, Math.max(1, Math.round(ttl / 1000)));
    const isBlocked = count > limit;
    return { totalHits: count, timeToExpire: retryAfterSeconds, isBlocked, timeToBlockExpire: isBlocked ? retryAfterSeconds : 0 };
  }
}
