import { randomFillSync } from 'node:crypto';

/**
 * Random bytes drawn from the CSPRNG a pool at a time (as node's randomUUID caches them), each
 * byte handed out once: one `randomFillSync` per pool instead of a CSPRNG call per id or token.
 */
export class RandomPool {
  readonly bytes: Buffer;
  private offset: number;

  /** `size`: a multiple of every `take` length asked of this pool. */
  constructor(size: number) {
    this.bytes = Buffer.alloc(size);
    this.offset = size;
  }

  /** Where `length` unused bytes start in `bytes` (the pool is refilled when spent). */
  take(length: number): number {
    if (this.offset + length > this.bytes.length) {
      randomFillSync(this.bytes);
      this.offset = 0;
    }
    const start = this.offset;
    this.offset += length;
    return start;
  }
}
