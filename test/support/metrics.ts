import { http } from './http';

/** A counter's value in a Gatehouse's /metrics (0 when the series has not appeared yet). */
export async function counterValue(base: string, series: string): Promise<number> {
  const text = (await http(base, 'GET', '/metrics')).text;
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** gatehouse_auth_failures_total{reason} of one Gatehouse. */
export function authFailures(base: string, reason: string): Promise<number> {
  return counterValue(base, `gatehouse_auth_failures_total{reason="${reason}"}`);
}
