import { describe, expect, it } from 'vitest';
import { RoutingValidationError, parseDocument, parsePartKey } from '../../src/routing/routing-document';
import { RoutingTable } from '../../src/routing/routing-table';

const doc = (projection: object) => parseDocument(JSON.stringify({ projection }));

describe('routing document validation', () => {
  it('accepts the file form with a default placement and fills missing kinds', () => {
    const document = doc({
      placement: { acme: 's1', '*': 's2' },
      shards: { s1: ['10.0.0.1:8080'], s2: ['proj-b.internal:80', '[::1]:9000'] },
    });
    expect(document.aggregate).toEqual({ placement: {}, shards: {} });
    expect(document.projection.placement.acme).toBe('s1');
  });

  it.each([
    ['bad JSON', '{', '(document)'],
    ['an unknown shard id', JSON.stringify({ projection: { placement: { acme: 'nope' }, shards: {} } }), 'projection.placement.acme'],
    ['an empty endpoint list', JSON.stringify({ projection: { placement: {}, shards: { s1: [] } } }), 'projection.shards.s1'],
    [
      'a bad tenant id',
      JSON.stringify({ projection: { placement: { 'Acme Corp': 's1' }, shards: { s1: ['a:1'] } } }),
      'projection.placement',
    ],
    ['an endpoint with a scheme', JSON.stringify({ runner: { placement: {}, shards: { s1: ['http://a:1'] } } }), 'runner.shards.s1.0'],
    ['a port out of range', JSON.stringify({ runner: { placement: {}, shards: { s1: ['a:70000'] } } }), 'runner.shards.s1.0'],
    ['an unknown kind', JSON.stringify({ billing: {} }), ''],
  ])('refuses %s', (_label, raw, path) => {
    try {
      parseDocument(raw);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(RoutingValidationError);
      expect((error as RoutingValidationError).problems.some((problem) => problem.path.startsWith(path))).toBe(true);
    }
  });

  it('reads KV key names', () => {
    expect(parsePartKey('aggregate.shards')).toEqual({ kind: 'aggregate', part: 'shards' });
    expect(parsePartKey('aggregate.other')).toBeUndefined();
    expect(parsePartKey('billing.placement')).toBeUndefined();
  });
});

describe('routing table', () => {
  it('resolves a tenant, falls back to "*", and misses without a default', () => {
    const table = new RoutingTable();
    table.offerDocument(doc({ placement: { acme: 's1', '*': 's2' }, shards: { s1: ['a:1'], s2: ['b:1', 'c:1'] } }), 1);
    expect(table.resolve('projection', 'acme')).toMatchObject({ shardId: 's1', endpoints: ['a:1'], matched: 'acme' });
    expect(table.resolve('projection', 'other')).toMatchObject({ shardId: 's2', matched: '*' });
    expect(table.resolve('projection', undefined)).toMatchObject({ shardId: 's2' });
    expect(table.resolve('aggregate', 'acme')).toBeUndefined();
  });

  it('keeps the last good table when a part is invalid, and records why', () => {
    const table = new RoutingTable();
    table.offerPart('projection', 'shards', JSON.stringify({ s1: ['a:1'] }), 4);
    table.offerPart('projection', 'placement', JSON.stringify({ acme: 's1' }), 5);
    const good = table.snapshot('projection');
    const bad = table.offerPart('projection', 'placement', '{oops', 6);
    expect(bad.applied).toBe(false);
    expect(table.snapshot('projection')).toBe(good);
    expect(table.lastRejection('projection')).toMatchObject({ part: 'placement', revision: 6 });
    expect(table.snapshot('projection').revisions).toEqual({ placement: 5, shards: 4 });
  });

  it('applies a placement naming a new shard once that shard arrives, and never half of it', () => {
    const table = new RoutingTable();
    table.offerPart('aggregate', 'shards', JSON.stringify({ s1: ['a:1'] }), 1);
    table.offerPart('aggregate', 'placement', JSON.stringify({ acme: 's1' }), 2);
    // placement first: refers to s2, which is not there yet → rejected, old table stays
    expect(table.offerPart('aggregate', 'placement', JSON.stringify({ acme: 's2' }), 3).applied).toBe(false);
    expect(table.resolve('aggregate', 'acme')?.shardId).toBe('s1');
    // then the shard directory with s2 → both go live together
    expect(table.offerPart('aggregate', 'shards', JSON.stringify({ s1: ['a:1'], s2: ['b:1'] }), 4).applied).toBe(true);
    expect(table.resolve('aggregate', 'acme')?.shardId).toBe('s2');
    expect(table.snapshot('aggregate').revisions).toEqual({ placement: 3, shards: 4 });
  });

  it('applies a valid part next to the part in force when the pending other part is inconsistent', () => {
    const table = new RoutingTable();
    table.offerPart('runner', 'shards', JSON.stringify({ s1: ['a:1'] }), 1);
    table.offerPart('runner', 'placement', JSON.stringify({ '*': 's1' }), 2);
    table.offerPart('runner', 'placement', JSON.stringify({ '*': 'missing' }), 3);
    expect(table.offerPart('runner', 'shards', JSON.stringify({ s1: ['a:2'] }), 4).applied).toBe(true);
    expect(table.resolve('runner', undefined)).toMatchObject({ shardId: 's1', endpoints: ['a:2'] });
  });

  it('swaps a kind atomically: a snapshot taken before a change never changes', () => {
    const table = new RoutingTable();
    table.offerDocument(doc({ placement: { acme: 's1' }, shards: { s1: ['a:1'] } }), 1);
    const before = table.snapshot('projection');
    table.offerDocument(doc({ placement: { acme: 's2' }, shards: { s2: ['b:1'] } }), 2);
    expect(before.table).toEqual({ placement: { acme: 's1' }, shards: { s1: ['a:1'] } });
    expect(Object.isFrozen(before.table.shards.s1)).toBe(true);
    expect(table.snapshot('projection').table.placement.acme).toBe('s2');
  });

  it('treats a deleted part as empty', () => {
    const table = new RoutingTable();
    table.offerDocument(doc({ placement: { acme: 's1' }, shards: { s1: ['a:1'] } }), 1);
    expect(table.offerPart('projection', 'placement', null, 9).applied).toBe(true);
    expect(table.resolve('projection', 'acme')).toBeUndefined();
  });

  it('applies both parts read together as one document, with no rejection for the placement read first', () => {
    const table = new RoutingTable();
    const results = table.offerParts(
      'aggregate',
      { raw: JSON.stringify({ acme: 's1', '*': 's2' }), revision: 3 },
      { raw: JSON.stringify({ s1: ['a:1'], s2: ['b:1'] }), revision: 4 },
    );
    expect(results.map((result) => result.applied)).toEqual([true]);
    expect(table.lastRejection('aggregate')).toBeUndefined();
    expect(table.snapshot('aggregate').revisions).toEqual({ placement: 3, shards: 4 });
    expect(table.resolve('aggregate', 'other')).toMatchObject({ shardId: 's2' });
    // a pair that really is inconsistent is still refused, and the last good table stays
    const refused = table.offerParts('aggregate', { raw: JSON.stringify({ acme: 'nope' }), revision: 5 }, { raw: '{}', revision: 6 });
    expect(refused[0]!.applied).toBe(false);
    expect(table.resolve('aggregate', 'acme')).toMatchObject({ shardId: 's1' });
  });
});
