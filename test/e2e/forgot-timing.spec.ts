import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootAppOnTestDatabase, type TestApp } from '../support/app';
import { signupUser, waitForMail } from '../support/auth-flows';
import { http, uniqueEmail } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true, nats: true });

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 0 ? (sorted[middle - 1]! + sorted[middle]!) / 2 : sorted[middle]!;
};

/**
 * Issue 11: `POST /v1/auth/forgot` told known from unknown addresses by its response time
 * (median 12.4 ms vs 22.2 ms). It now answers before any per-account work.
 */
describe.skipIf(!available)('forgot answers in the same time for known and unknown addresses', () => {
  let app: TestApp;

  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ app, close } = await bootAppOnTestDatabase());
  });
  afterAll(() => close?.());

  // a timing comparison on a shared machine: up to three rounds, each with fresh addresses; a
  // real difference (the old code's ~10 ms) shows in every round, a scheduling hiccup in one
  it('30 known and 30 unknown addresses, interleaved after a warm-up: medians within 2 ms or 15 % (best of up to 3 rounds)', async () => {
    const forgot = async (email: string) => {
      const started = performance.now();
      const result = await http(app.url, 'POST', '/v1/auth/forgot', { json: { email } });
      const elapsed = performance.now() - started;
      expect(result.status).toBe(202);
      return { elapsed, body: result.text };
    };
    for (let index = 0; index < 10; index += 1) await forgot(uniqueEmail(`warmup${index}`));

    const bodies = new Set<string>();
    const allKnown: string[] = [];
    let within = false;
    for (let round = 1; round <= 3 && !within; round += 1) {
      const known: string[] = [];
      for (let index = 0; index < 30; index += 1) known.push((await signupUser(app.url, uniqueEmail(`known${index}`))).email);
      allKnown.push(...known);
      const unknown = Array.from({ length: 30 }, (_, index) => uniqueEmail(`unknown${index}`));
      const knownTimes: number[] = [];
      const unknownTimes: number[] = [];
      for (let index = 0; index < 30; index += 1) {
        const [first, second] = index % 2 === 0 ? [known[index]!, unknown[index]!] : [unknown[index]!, known[index]!];
        for (const email of [first, second]) {
          const { elapsed, body } = await forgot(email);
          (known.includes(email) ? knownTimes : unknownTimes).push(elapsed);
          bodies.add(body.replace(/"request_id":"[^"]*"/, ''));
        }
      }
      const knownMedian = median(knownTimes);
      const unknownMedian = median(unknownTimes);
      const difference = Math.abs(knownMedian - unknownMedian);
      within = difference < 2 || difference / Math.min(knownMedian, unknownMedian) < 0.15;
      console.log(
        `forgot timing, round ${round}: known median ${knownMedian.toFixed(2)} ms, unknown median ${unknownMedian.toFixed(2)} ms, ` +
          `difference ${difference.toFixed(2)} ms (${((difference / Math.min(knownMedian, unknownMedian)) * 100).toFixed(1)} %)`,
      );
    }
    expect(within).toBe(true);
    expect(bodies.size).toBe(1);
    // the work still happens: every known address gets its reset link
    for (const email of allKnown) await waitForMail(app.dataDir, email, 'token=');
  });
});
