import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { LineBatch } from '../../src/observability/logger';

function tempFile(): { fd: number; file: string } {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-line-batch-')), 'out.log');
  return { fd: fs.openSync(file, 'w'), file };
}

describe('request lines in batches', () => {
  it('writes every line whole and in order, as bytes to the descriptor, batches within PIPE_BUF', () => {
    const { fd, file } = tempFile();
    const writes: number[] = [];
    const original = fs.writeSync;
    const spy = ((...args: Parameters<typeof fs.writeSync>) => {
      const written = (original as (...a: unknown[]) => number)(...args);
      writes.push(written);
      return written;
    }) as typeof fs.writeSync;
    fs.writeSync = spy;
    const fallback: string[] = [];
    try {
      const batch = new LineBatch({ fd, write: (text: string) => fallback.push(text) });
      const lines: string[] = [];
      for (let i = 0; i < 500; i += 1) {
        // ASCII, two- and three-byte characters, and lines of many lengths
        const line = `{"n":${i},"text":${JSON.stringify(`é€ ${'x'.repeat(i % 97)}`)}}\n`;
        lines.push(line);
        batch.write(line);
      }
      batch.drain();
      expect(fs.readFileSync(file, 'utf8')).toBe(lines.join(''));
      expect(fallback).toEqual([]);
      expect(Math.max(...writes)).toBeLessThanOrEqual(4096);
      expect(writes.length).toBeGreaterThan(1);
    } finally {
      fs.writeSync = original;
      fs.closeSync(fd);
    }
  });

  it('writes a line longer than a batch alone, after the lines before it', () => {
    const { fd, file } = tempFile();
    const through: string[] = [];
    const batch = new LineBatch({ fd, write: (text: string) => (fs.writeSync(fd, text), through.push(text)) });
    const long = `{"long":"${'y'.repeat(5000)}"}\n`;
    batch.write('{"first":1}\n');
    batch.write(long);
    batch.write('{"last":1}\n');
    batch.drain();
    fs.closeSync(fd);
    expect(fs.readFileSync(file, 'utf8')).toBe(`{"first":1}\n${long}{"last":1}\n`);
    expect(through).toEqual([long]);
  });

  it('hands what it could not write to the destination itself (its own retrying write)', () => {
    const through: string[] = [];
    // a descriptor that is not open: the direct write fails
    const batch = new LineBatch({ fd: 987_654, write: (text: string) => through.push(text) });
    batch.write('{"a":"é"}\n');
    batch.write('{"b":2}\n');
    batch.drain();
    expect(through).toEqual(['{"a":"é"}\n{"b":2}\n']);
  });

  it('after a partial write and EAGAIN, writes the remaining bytes itself: the lines come out exact', () => {
    const lines = ['{"a":"é"}\n', '{"b":"€"}\n'];
    const encoded = Buffer.from(lines.join(''));
    // the first write stops inside "é" (its first byte only), the next finds the socket full
    const split = encoded.indexOf(Buffer.from('é')) + 1;
    const out: Buffer[] = [];
    const through: string[] = [];
    const original = fs.writeSync;
    let calls = 0;
    fs.writeSync = ((_fd: number, buffer: Buffer, offset: number, length: number) => {
      calls += 1;
      if (calls === 1) {
        out.push(Buffer.from(buffer.subarray(offset, split)));
        return split - offset;
      }
      if (calls <= 3) throw Object.assign(new Error('EAGAIN: resource temporarily unavailable'), { code: 'EAGAIN' });
      out.push(Buffer.from(buffer.subarray(offset, offset + length)));
      return length;
    }) as typeof fs.writeSync;
    try {
      const batch = new LineBatch({ fd: 1, write: (text: string) => through.push(text) });
      for (const line of lines) batch.write(line);
      batch.drain();
    } finally {
      fs.writeSync = original;
    }
    expect(Buffer.concat(out).toString('utf8')).toBe(lines.join(''));
    expect(through).toEqual([]);
    expect(calls).toBe(4);
  });

  it('writes a line within 100 ms, and keeps no timer while no line waits', () => {
    vi.useFakeTimers();
    try {
      const through: string[] = [];
      // no descriptor: every batch goes to the destination's own write
      const batch = new LineBatch({ write: (text: string) => through.push(text) });
      expect(vi.getTimerCount()).toBe(0);
      batch.write('{"a":1}\n');
      vi.advanceTimersByTime(100);
      expect(through).toEqual(['{"a":1}\n']);
      // the next tick finds nothing and stops
      vi.advanceTimersByTime(100);
      expect(vi.getTimerCount()).toBe(0);
      batch.write('{"b":2}\n');
      vi.advanceTimersByTime(99);
      expect(through).toEqual(['{"a":1}\n']);
      vi.advanceTimersByTime(1);
      expect(through).toEqual(['{"a":1}\n', '{"b":2}\n']);
    } finally {
      vi.useRealTimers();
    }
  });
});
