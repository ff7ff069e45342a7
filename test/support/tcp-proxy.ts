import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

/**
 * A TCP proxy in front of a server, so a test can make the connections open now hang for good (the
 * server neither answers nor closes them: a hung process, a dead NAT entry) while new connections
 * still work, which is what an operation timeout must get a client out of.
 */
export class HangingProxy {
  private readonly server: Server;
  private readonly open = new Set<{ client: Socket; upstream: Socket }>();
  /** Connections made hung: everything they carry from now on is dropped. */
  private readonly hung = new Set<Socket>();
  /** Hung connections the client gave up on and closed (an operation timeout did its work). */
  hungClosedByClient = 0;
  port = 0;

  constructor(private readonly upstream: { host: string; port: number }) {
    this.server = createServer((client) => {
      const upstreamSocket = tcpConnect(this.upstream.port, this.upstream.host);
      const pair = { client, upstream: upstreamSocket };
      this.open.add(pair);
      client.on("data", (chunk) => {
        if (!this.hung.has(client)) upstreamSocket.write(chunk);
      });
      upstreamSocket.on("data", (chunk) => {
        if (!this.hung.has(client)) client.write(chunk);
      });
      const end = () => {
        if (!this.open.has(pair)) return;
        // Only the client side can close a hung pair: the proxy carries nothing for it any more.
        if (this.hung.has(client)) this.hungClosedByClient++;
        this.open.delete(pair);
        this.hung.delete(client);
        client.destroy();
        upstreamSocket.destroy();
      };
      client.on("close", end);
      upstreamSocket.on("close", end);
      client.on("error", end);
      upstreamSocket.on("error", end);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    if (address === null || typeof address === "string") throw new Error("proxy has no port");
    this.port = address.port;
  }

  /** Every connection open now stops carrying bytes, in both directions, and stays open. */
  hangOpenConnections(): number {
    for (const { client } of this.open) this.hung.add(client);
    return this.hung.size;
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.open) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
