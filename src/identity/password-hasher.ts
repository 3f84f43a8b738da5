import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { hash, parseOptions, verify, type Algorithm } from '@node-rs/argon2';
import { normalizePassword } from './password-policy';

/** argon2id, OWASP minimum (m=19 MiB, t=2, p=1). Raising these re-hashes on the next sign-in. */
export const ARGON2_PARAMS = {
  // Algorithm.Argon2id; a const enum, which isolated-module builds cannot inline
  algorithm: 2 as Algorithm,
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
};

@Injectable()
export class PasswordHasher {
  /** Unknown accounts are checked against this, so timing does not reveal which emails exist. */
  private dummyHash: Promise<string> | undefined;

  hash(password: string): Promise<string> {
    return hash(normalizePassword(password), ARGON2_PARAMS);
  }

  async verify(phc: string, password: string): Promise<boolean> {
    try {
      return await verify(phc, normalizePassword(password));
    } catch {
      return false;
    }
  }

  /** Same work as a real verification, always false. */
  async verifyDummy(password: string): Promise<false> {
    this.dummyHash ??= hash(randomBytes(24).toString('base64'), ARGON2_PARAMS);
    await this.verify(await this.dummyHash, password);
    return false;
  }

  needsRehash(phc: string): boolean {
    try {
      const options = parseOptions(phc);
      return (
        options.algorithm !== ARGON2_PARAMS.algorithm ||
        options.memoryCost < ARGON2_PARAMS.memoryCost ||
        options.timeCost < ARGON2_PARAMS.timeCost ||
        options.parallelism < ARGON2_PARAMS.parallelism
      );
    } catch {
      return true;
    }
  }
}
