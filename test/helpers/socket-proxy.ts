// A stand-in for the Docker socket that a test can cut and restore: every
// connection is piped to the real engine; `cut()` drops them all and stops
// listening, the way a restarting engine's socket disappears.
import { chmodSync, chownSync, rmSync, statSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

export class SocketProxy {
  private server: Server | undefined;
  private readonly open = new Set<Socket>();

  constructor(
    readonly path: string,
    private readonly target = '/var/run/docker.sock',
  ) {}

  async listen(): Promise<void> {
    rmSync(this.path, { force: true });
    this.server = createServer((client) => {
      const upstream = connect(this.target);
      this.open.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.open.delete(client);
        this.open.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(this.path, r));
    // Reachable by whom the real socket is (root:docker 0660): the agent runs in group docker.
    const real = statSync(this.target);
    chownSync(this.path, real.uid, real.gid);
    chmodSync(this.path, real.mode & 0o777);
  }

  async cut(): Promise<void> {
    for (const s of this.open) s.destroy();
    this.open.clear();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
    rmSync(this.path, { force: true });
  }
}
