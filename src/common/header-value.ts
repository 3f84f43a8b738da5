/** The first value of a header as Node types it (`string[]` for the few it keeps as a list). */
export function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
