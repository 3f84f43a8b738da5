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

describe('StreamedBody.readSmall', () => {
  it('reads a body arriving in several chunks whole, and leaves no listener behind', async () => {
    const source = new PassThrough();
    const body = new StreamedBody(source, 13, 1024);
    const read = body.readSmall()!;
    source.write('{"a":');
    source.write('1,"b"');
    source.end(':2}');
    expect(((await within(read)) as Buffer).toString()).toBe('{"a":1,"b":2}');
    for (const event of ['data', 'end', 'error', 'close']) expect(source.listenerCount(event)).toBe(0);
  });

  it('reads a body of one chunk as that chunk', async () => {
    const source = new PassThrough();
    const body = new StreamedBody(source, 7, 1024);
    const read = body.readSmall()!;
    source.end('{"q":1}');
    expect(((await within(read)) as Buffer).toString()).toBe('{"q":1}');
  });

  it('fails as the client’s when the body ends short of its declared length, or the client goes mid-body', async () => {
    const short = new PassThrough();
    const shortBody = new StreamedBody(short, 20, 1024);
    const shortRead = shortBody.readSmall()!;
    short.end('{"q":1}');
    await expect(within(shortRead)).rejects.toMatchObject({ code: 'validation_failed' });

    const gone = new PassThrough();
    const goneBody = new StreamedBody(gone, 20, 1024);
    const goneRead = goneBody.readSmall()!;
    gone.write('{"q":');
    gone.destroy();
    await expect(within(goneRead)).rejects.toMatchObject({ code: 'validation_failed' });
    expect(goneBody.failure).toBeDefined();
  });
});
