// Real room servers for the browser tests: started, killed (-9) and restarted by the tests.
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';

/** The release room server binary (built by scripts/test-all.sh before the browser tests). */
export const SERVER_BIN =
  process.env.CAHAT_SERVER_BIN ||
  join(process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/cahat/target'), 'release/real-server');

/** Where rooms keep their messages: the embedded store, or MongoDB at a URI. */
export type Store = { kind: 'embedded' } | { kind: 'mongodb'; uri: string };

export function stores(): Store[] {
  const uri = process.env.CAHAT_MONGODB_URI;
  const list: Store[] = [{ kind: 'embedded' }];
  if (uri) list.push({ kind: 'mongodb', uri });
  else if (process.env.CI) throw new Error('CAHAT_MONGODB_URI is not set: CI must test the MongoDB store');
  return list;
}

let unique = 0;

export class RoomServer {
  port = 0;
  private proc?: ChildProcess;
  private exited?: Promise<void>;
  readonly dataDir = mkdtempSync(join(tmpdir(), 'cahat-e2e-'));
  /** The room's key in a shared MongoDB: unique per run, so runs never see each other's rooms. */
  readonly key: string;

  constructor(readonly name: string, readonly store: Store, readonly extraArgs: string[] = []) {
    this.key = `${name}-${process.pid}-${Date.now()}-${unique++}`;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  /** Starts the server (again on the same port after a kill) and waits until it listens. */
  async start(): Promise<void> {
    const args = ['--port', String(this.port), '--name', this.name, ...this.extraArgs];
    if (this.store.kind === 'embedded') args.push('--data-dir', this.dataDir);
    // With MongoDB the data directory holds only the room's data key.
    else args.push('--mongodb-uri', this.store.uri, '--room-id', this.key, '--data-dir', this.dataDir);
    const proc = spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    let log = '';
    proc.stderr!.on('data', (d) => (log += d));
    this.port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`server did not start: ${out}${log}`)), 20_000);
      proc.stdout!.on('data', (d) => {
        out += d;
        const m = out.match(/at ws:\/\/127\.0\.0\.1:(\d+)\//);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}: ${out}${log}`));
      });
    });
  }

  /** The store's flags of this room (`--data-dir`, or MongoDB's and the room's key; the data
   * directory holds the room's data key either way). */
  private storeArgs(): string[] {
    return this.store.kind === 'embedded'
      ? ['--name', this.name, '--data-dir', this.dataDir]
      : ['--name', this.name, '--mongodb-uri', this.store.uri, '--room-id', this.key, '--data-dir', this.dataDir];
  }

  /** `real-server role ARGS` on this room's store (the operator's command); its output. */
  role(args: string[]): string {
    const done = spawnSync(SERVER_BIN, [...this.storeArgs(), 'role', ...args], { encoding: 'utf8' });
    if (done.status !== 0) throw new Error(`real-server role ${args.join(' ')}: ${done.stderr}`);
    return done.stdout;
  }

  /** kill -9: no shutdown, no flush. */
  async kill9(): Promise<void> {
    this.proc?.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      await this.exited;
    }
  }
}
