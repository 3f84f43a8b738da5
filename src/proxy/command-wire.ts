/**
 * The fields of an encoded `SubmitCommandRequest` that Gatehouse decides on, read from the
 * protobuf wire bytes without decoding the message (the payload is never copied). The call is
 * forwarded as these same bytes, so what is authorized is exactly what the aggregate decodes:
 * a field given twice counts by its last occurrence, as every protobuf decoder reads it.
 */
export interface CommandRoutingFields {
  aggregate_type: string;
  aggregate_id: string;
  command_id: string;
  command_type: string;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

/** field number → wire type of `SubmitCommandRequest` (CONTRACT §7) */
const KNOWN_FIELDS: ReadonlyArray<number | undefined> = [
  undefined,
  WIRE_LENGTH_DELIMITED, // 1 aggregate_type
  WIRE_LENGTH_DELIMITED, // 2 aggregate_id
  WIRE_LENGTH_DELIMITED, // 3 command_id
  WIRE_LENGTH_DELIMITED, // 4 command_type
  WIRE_LENGTH_DELIMITED, // 5 payload
  WIRE_VARINT, // 6 expected_version
];

/** Thrown for bytes that are not a well-formed `SubmitCommandRequest`. */
export class MalformedCommand extends Error {
  constructor(reason: string) {
    super(`malformed SubmitCommandRequest: ${reason}`);
    this.name = 'MalformedCommand';
  }
}

/**
 * Walks every field once (unknown fields are skipped by wire type, as decoders do). Groups
 * (wire types 3 and 4, deprecated and absent from this contract) and truncated or mistyped
 * fields are refused rather than guessed at. All four fields decoded: the gRPC path reads
 * `readCommandRouting` instead; this is the full reading its walk is tested against.
 */
export function readCommandFields(bytes: Buffer): CommandRoutingFields {
  const spans = commandFieldSpans(bytes);
  const text = (index: number) => bytes.toString('utf8', spans[index * 2], spans[index * 2 + 1]);
  return { aggregate_type: text(0), aggregate_id: text(1), command_id: text(2), command_type: text(3) };
}

/**
 * What the gRPC path decides on: `aggregate_type` as text (the resource authorized and
 * routed), and of the other three required fields only their size in bytes, which is 0
 * exactly when the decoded string is empty — they are checked for presence, never read, so
 * they are not decoded (three strings per call fewer).
 */
export interface CommandRouting {
  aggregate_type: string;
  aggregate_id_bytes: number;
  command_id_bytes: number;
  command_type_bytes: number;
}

/** `readCommandFields`' walk (the same refusals), with only `aggregate_type` decoded. */
export function readCommandRouting(bytes: Buffer): CommandRouting {
  const spans = commandFieldSpans(bytes);
  return {
    aggregate_type: bytes.toString('utf8', spans[0], spans[1]),
    aggregate_id_bytes: spans[3]! - spans[2]!,
    command_id_bytes: spans[5]! - spans[4]!,
    command_type_bytes: spans[7]! - spans[6]!,
  };
}

/** [start, end) of the last occurrence of fields 1-4, in that order (0, 0 when absent). */
function commandFieldSpans(bytes: Buffer): number[] {
  const end = bytes.length;
  // [start, end) of the last occurrence of fields 1-4
  const spans = [0, 0, 0, 0, 0, 0, 0, 0];
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (pos >= end) throw new MalformedCommand('truncated varint');
      const byte = bytes[pos++]!;
      if (shift < 28) result |= (byte & 0x7f) << shift;
      else if (shift < 53) result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new MalformedCommand('varint too long');
    }
  };
  while (pos < end) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 0) throw new MalformedCommand('field number 0');
    const expected = KNOWN_FIELDS[field];
    if (expected !== undefined && expected !== wire) throw new MalformedCommand(`field ${field} has wire type ${wire}`);
    switch (wire) {
      case WIRE_VARINT:
        varint();
        break;
      case WIRE_FIXED64:
        pos += 8;
        break;
      case WIRE_FIXED32:
        pos += 4;
        break;
      case WIRE_LENGTH_DELIMITED: {
        const length = varint();
        const start = pos;
        pos += length;
        if (pos > end) break;
        if (field <= 4) {
          spans[(field - 1) * 2] = start;
          spans[(field - 1) * 2 + 1] = pos;
        }
        break;
      }
      default:
        throw new MalformedCommand(`wire type ${wire}`);
    }
    if (pos > end) throw new MalformedCommand('truncated field');
  }
  return spans;
}
