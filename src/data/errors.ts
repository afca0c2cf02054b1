/**
 * Errors raised by the dataset readers. `where` names the file and the line (JSONL) or the entry
 * (Karpathy JSON) so a user can find the bad row; `reason` says what is wrong with it.
 */
export class DatasetError extends Error {
  readonly where: string;
  readonly reason: string;

  constructor(where: string, reason: string, options?: { cause?: unknown }) {
    super(`${where}: ${reason}`, options);
    this.name = 'DatasetError';
    this.where = where;
    this.reason = reason;
  }
}

/** A row that failed validation or decoding; collected in skip mode, thrown as DatasetError in fail mode. */
export interface BadRow {
  where: string;
  reason: string;
}
