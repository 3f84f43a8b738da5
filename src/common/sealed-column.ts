/** One sealed value in a table, by its row id. */
export interface SealedValue {
  id: string;
  sealed: string;
}

/**
 * A column holding values sealed with MASTER_KEY, as its owning repository exposes it to the
 * master-key re-seal: pages in id order, and a compare-and-set write so a concurrent change of
 * the row (on this or the other replica) wins over the re-seal.
 */
export interface SealedColumn {
  /** the SecretBox purpose the column is sealed under */
  purpose: string;
  page(afterId: string | undefined, limit: number): Promise<SealedValue[]>;
  replace(id: string, from: string, to: string): Promise<boolean>;
}
