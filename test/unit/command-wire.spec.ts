import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { COMMAND_LOADER_OPTIONS, COMMAND_PROTO_PATH, type SubmitCommandRequest } from '../../src/proxy/command-proto';
import { MalformedCommand, readCommandFields, readCommandRouting } from '../../src/proxy/command-wire';

const definition = protoLoader.loadSync(COMMAND_PROTO_PATH, COMMAND_LOADER_OPTIONS);
const method = (definition['aggregate.gateway.v1.CommandService'] as protoLoader.ServiceDefinition).SubmitCommand!;
const encode = (request: SubmitCommandRequest): Buffer => method.requestSerialize(request);
const decode = (bytes: Buffer): SubmitCommandRequest => method.requestDeserialize(bytes) as SubmitCommandRequest;

/** tag + length-delimited value, as a protobuf encoder writes a string field */
function stringField(field: number, value: string): Buffer {
  const bytes = Buffer.from(value);
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}

describe('readCommandFields (the gRPC pass-through reads what it authorizes from the wire bytes)', () => {
  it('reads the routing fields of an encoded SubmitCommandRequest, whatever else it carries', () => {
    const bytes = encode({
      aggregate_type: 'order',
      aggregate_id: 'o-1',
      command_id: 'c-ü-1',
      command_type: 'order.place',
      payload: Buffer.from(JSON.stringify({ big: 'x'.repeat(10_000) })),
      expected_version: '9007199254740993',
    });
    expect(readCommandFields(bytes)).toEqual({
      aggregate_type: 'order',
      aggregate_id: 'o-1',
      command_id: 'c-ü-1',
      command_type: 'order.place',
    });
  });

  it('reads absent fields as empty strings, as proto3 decoders do', () => {
    expect(readCommandFields(Buffer.alloc(0))).toEqual({ aggregate_type: '', aggregate_id: '', command_id: '', command_type: '' });
  });

  it('takes the last occurrence of a repeated field, as the aggregate decoding the same bytes does', () => {
    const bytes = Buffer.concat([stringField(1, 'order'), stringField(2, 'o-1'), stringField(1, 'payroll')]);
    expect(decode(bytes).aggregate_type).toBe('payroll');
    expect(readCommandFields(bytes).aggregate_type).toBe('payroll');
  });

  it('skips unknown fields of every wire type', () => {
    const unknown = Buffer.from([(10 << 3) | 0, 0x96, 0x01, (11 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8, (12 << 3) | 5, 1, 2, 3, 4]);
    const bytes = Buffer.concat([
      unknown,
      stringField(1, 'order'),
      stringField(13, 'ignored'),
      Buffer.from([0xa0, 0x01, 0x07]),
      stringField(4, 'order.ship'),
    ]);
    expect(readCommandFields(bytes)).toMatchObject({ aggregate_type: 'order', command_type: 'order.ship' });
  });

  it('refuses truncated fields, groups and known fields of the wrong wire type', () => {
    const good = encode({ aggregate_type: 'order', aggregate_id: 'o-1', command_id: 'c-1', command_type: 'order.place' });
    for (const bytes of [
      good.subarray(0, good.length - 1),
      Buffer.from([0x0a, 0x05, 0x61]),
      Buffer.from([0x0a]),
      Buffer.from([0x08, 0x01]),
      Buffer.from([(7 << 3) | 3]),
      Buffer.from([0x00, 0x01]),
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    ]) {
      expect(() => readCommandFields(bytes), bytes.toString('hex')).toThrow(MalformedCommand);
      expect(() => readCommandRouting(bytes), bytes.toString('hex')).toThrow(MalformedCommand);
    }
  });

  it('readCommandRouting (the gRPC path) reads aggregate_type and the byte size of the other three, 0 exactly when empty', () => {
    const full = encode({
      aggregate_type: 'order',
      aggregate_id: 'o-1',
      command_id: 'c-ü-1',
      command_type: 'order.place',
      payload: Buffer.from('{}'),
    });
    expect(readCommandRouting(full)).toEqual({
      aggregate_type: 'order',
      aggregate_id_bytes: 3,
      command_id_bytes: 6,
      command_type_bytes: 11,
    });
    const empty = encode({ aggregate_type: 'order', aggregate_id: '', command_id: 'c-1', command_type: '' });
    expect(readCommandRouting(empty)).toEqual({
      aggregate_type: 'order',
      aggregate_id_bytes: 0,
      command_id_bytes: 3,
      command_type_bytes: 0,
    });
    // the last occurrence counts, as for readCommandFields: an empty aggregate_id after a full one is empty
    const repeated = Buffer.concat([stringField(2, 'o-1'), stringField(3, 'c-1'), stringField(2, ''), stringField(1, 'payroll')]);
    expect(readCommandFields(repeated).aggregate_id).toBe('');
    expect(readCommandRouting(repeated)).toEqual({
      aggregate_type: 'payroll',
      aggregate_id_bytes: 0,
      command_id_bytes: 3,
      command_type_bytes: 0,
    });
    // bytes that are not UTF-8 still decode to a non-empty string, so a non-zero size is a present field
    const invalidUtf8 = Buffer.from([0x12, 0x01, 0xff]);
    expect(readCommandFields(invalidUtf8).aggregate_id).not.toBe('');
    expect(readCommandRouting(invalidUtf8).aggregate_id_bytes).toBe(1);
    expect(readCommandRouting(Buffer.alloc(0))).toEqual({
      aggregate_type: '',
      aggregate_id_bytes: 0,
      command_id_bytes: 0,
      command_type_bytes: 0,
    });
  });
});
