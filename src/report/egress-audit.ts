/**
 * The run's egress audit: every egress attempt the proxy reports (src/proxy/egress-proxy.ts `AuditRecord`: time,
 * host, port, method, allowed or refused, bytes each way; never headers or bodies) is appended to `egress.jsonl` in
 * the run's log folder as it arrives, one JSON object a line, and counted for the report's `egress`.
 */
import { open, type FileHandle } from 'node:fs/promises';
import createDebug from 'debug';
import { errorMessage } from '../errors.js';
import type { AuditRecord } from '../proxy/egress-proxy.js';
import type { EgressSummary } from './types.js';

const log = createDebug('agent-worker:run');

/** The audit's file name in the run's log folder. */
export const EGRESS_LOG = 'egress.jsonl';
/** Most refused host names listed in the report (the audit file has them all). */
const MAX_REFUSED_HOSTS = 20;

/** Appends audit records to a file and counts them. Writing never fails the run: a failed write is logged. */
export class EgressAudit {
  private allowed = 0;
  private refused = 0;
  private readonly refusedHosts = new Set<string>();
  private lastApiStatus: number | undefined;
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(private readonly file: FileHandle | undefined) {}

  /** Opens (creates, mode 0600) `file` for appending; without it, records are only counted. */
  static async open(file: string): Promise<EgressAudit> {
    try {
      return new EgressAudit(await open(file, 'a', 0o600));
    } catch (error) {
      log('cannot open %s: %s', file, errorMessage(error));
      return new EgressAudit(undefined);
    }
  }

  /** Counts `record` and appends it to the file, in arrival order. */
  record(record: AuditRecord): void {
    if (record.kind === 'api' && typeof record.status === 'number') this.lastApiStatus = record.status;
    if (record.allowed) this.allowed += 1;
    else {
      this.refused += 1;
      if (this.refusedHosts.size < MAX_REFUSED_HOSTS) this.refusedHosts.add(record.host);
    }
    const file = this.file;
    if (!file) return;
    const line = `${JSON.stringify(record)}\n`;
    this.writing = this.writing.then(() => file.appendFile(line, 'utf8')).catch((error: unknown) => log('audit write: %s', errorMessage(error)));
  }

  /**
   * The HTTP status of the model API's last answer when it refused the credential (401 or 403): the real key the
   * proxy added was not accepted, whatever the agent made of it. Undefined otherwise.
   */
  credentialRefusal(): number | undefined {
    return this.lastApiStatus === 401 || this.lastApiStatus === 403 ? this.lastApiStatus : undefined;
  }

  /** The counts so far, for the report. */
  summary(): EgressSummary {
    return { allowed: this.allowed, refused: this.refused, refusedHosts: [...this.refusedHosts] };
  }

  /** Waits for pending writes and closes the file. Never throws. */
  async close(): Promise<void> {
    await this.writing;
    await this.file?.close().catch(() => undefined);
  }
}
