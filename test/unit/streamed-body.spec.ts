import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StreamedBody } from '../../src/proxy/streamed-body';

/** A request body whose client hung up before anything read it (e.g. while the call was being authorized). */
async function abandoned(): Promise<PassThrough> {
  const source = new PassThrough();
  source.pause();
  source.write('{"q":1}');
  source.destroy();
  await new Promise((resolve) => setImmediate(resolve));
  return source;
}

const within = <T>(promise: Promise<T>) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error('never settled')), 500))]);

describe('StreamedBody of a client already gone', () => {
  it('a small declared body fails as the client’s, instead of waiting for bytes that never come', async () => {
    const body = new StreamedBody(await abandoned(), 7, 1024);
    await expect(within(body.readSmall()!)).rejects.toMatchObject({ code: 'validation_failed' });
    expect(body.failure).toBeDefined();
  });

  it('a streamed body ends its upstream relay with the client’s failure (no upstream call left hanging, nothing held against the endpoint)', async () => {
    const body = new StreamedBody(await abandoned(), undefined, 1024);
    const relay = body.forUpstream();
    const ended = new Promise<Error | undefined>((resolve) => {
      relay.once('error', resolve);
      relay.once('end', () => resolve(undefined));
    });
    relay.resume();
    expect(await within(ended)).toBe(body.failure);
    expect(body.failure).toMatchObject({ code: 'validation_failed' });
  });
});
