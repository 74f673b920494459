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

/** A free TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether the node on `port` answers /healthz with 200, asked as HAProxy asks (a PROXY header first). */
async function healthy(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (d) => (answer += d));
    socket.on('end', () => done(/^HTTP\/1\.[01] 200/.test(answer)));
    socket.on('connect', () => socket.write(`PROXY TCP4 127.0.0.1 127.0.0.1 1 ${port}\r\nGET /healthz HTTP/1.0\r\n\r\n`));
  });
}

const DEPLOY = join(__dirname, '../../deploy');
const NATS_BIN = join(process.env.CAHAT_VENV || join(homedir(), '.cache/cahat/venv'), 'bin/nats-server');

/**
 * A room as `deploy/` runs it (see real-server/tests/deploy.rs): three NATS servers in a
 * JetStream cluster, up to three room nodes, HAProxy in front; clients connect to `url` only.
 */
export class Deployment {
  private procs: ChildProcess[] = [];
  private nodes: (ChildProcess | undefined)[] = [];
  private natsPorts: number[] = [];
  private nodePorts: number[] = [];
  private lbPort = 0;
  private readonly dir = mkdtempSync(join(tmpdir(), 'cahat-e2e-deploy-'));
  private readonly room = `deploy-${process.pid}-${Date.now()}-${unique++}`;

  constructor(readonly name: string, readonly store: Store) {}

  get url(): string {
    return `ws://127.0.0.1:${this.lbPort}/`;
  }

  /** Starts the NATS cluster, HAProxy, and the first `nodes` nodes. */
  async start(nodes: number): Promise<void> {
    const routes = [await freePort(), await freePort(), await freePort()];
    this.natsPorts = [await freePort(), await freePort(), await freePort()];
    this.nodePorts = [await freePort(), await freePort(), await freePort()];
    this.lbPort = await freePort();
    for (let i = 0; i < 3; i++) {
      this.procs.push(
        spawn(NATS_BIN, ['-c', join(DEPLOY, 'nats/nats.conf')], {
          stdio: 'ignore',
          env: {
            ...process.env,
            CAHAT_NATS_NAME: `nats-${i + 1}`,
            CAHAT_NATS_CLIENTS: `127.0.0.1:${this.natsPorts[i]}`,
            CAHAT_NATS_ROUTES: `127.0.0.1:${routes[i]}`,
            CAHAT_NATS_ROUTE_1: `nats://127.0.0.1:${routes[0]}`,
            CAHAT_NATS_ROUTE_2: `nats://127.0.0.1:${routes[1]}`,
            CAHAT_NATS_ROUTE_3: `nats://127.0.0.1:${routes[2]}`,
            CAHAT_NATS_STORE: join(this.dir, `nats-${i + 1}`),
          },
        }),
      );
    }
    const keygen = spawnSync(SERVER_BIN, ['keygen', '--out', join(this.dir, 'room.key')], { encoding: 'utf8' });
    if (keygen.status !== 0) throw new Error(`keygen: ${keygen.stderr}`);
    this.procs.push(
      spawn('haproxy', ['-db', '-f', join(DEPLOY, 'haproxy.cfg')], {
        stdio: 'ignore',
        env: {
          ...process.env,
          CAHAT_LB_BIND: `127.0.0.1:${this.lbPort}`,
          CAHAT_NODE_1: `127.0.0.1:${this.nodePorts[0]}`,
          CAHAT_NODE_2: `127.0.0.1:${this.nodePorts[1]}`,
          CAHAT_NODE_3: `127.0.0.1:${this.nodePorts[2]}`,
        },
      }),
    );
    for (let i = 0; i < nodes; i++) await this.startNode(i);
  }

  /** Starts node `index` and waits until it is healthy and HAProxy takes it (two checks). */
  async startNode(index: number): Promise<void> {
    const nats = this.natsPorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
    for (let attempt = 0; attempt < 30; attempt++) {
      const args = ['--port', String(this.nodePorts[index]), '--name', this.name, '--room-id', this.room];
      args.push('--nats-url', nats, '--stream-replicas', '3', '--proxy-protocol-from', '127.0.0.1');
      args.push('--data-key-file', join(this.dir, 'room.key'));
      if (this.store.kind === 'embedded') args.push('--data-dir', join(this.dir, `node-${index + 1}`));
      else args.push('--mongodb-uri', this.store.uri, '--mongodb-db', 'cahat_e2e_deploy');
      const proc = spawn(SERVER_BIN, args, { stdio: 'ignore' });
      // It listens before it has joined the room's stream (the NATS cluster may still be
      // electing its leaders): ready once /healthz says so.
      for (let i = 0; i < 120 && proc.exitCode === null; i++) {
        if (await healthy(this.nodePorts[index])) {
          this.nodes[index] = proc;
          await new Promise((r) => setTimeout(r, 2500));
          return;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      proc.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`node ${index + 1} did not start`);
  }

  /** kill -9 of node `index`. */
  async kill9Node(index: number): Promise<void> {
    const proc = this.nodes[index];
    if (!proc) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
    this.nodes[index] = undefined;
  }

  async stop(): Promise<void> {
    for (const proc of [...this.nodes, ...this.procs]) {
      if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
  }
}
