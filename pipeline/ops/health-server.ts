/**
 * The processor's HTTP endpoint for Prometheus and Kubernetes (node:http, no framework):
 *
 * - `GET /metrics`: the metrics registry in Prometheus' text format. Each scrape also runs (or joins) a
 *   readiness check and waits up to `scrapeReadinessWaitMs` for it, so `agentmeter_ready` is current
 *   where nothing probes /readyz (docker compose, VMs); a check that takes longer (a hung store: pings
 *   time out after 5 s) does not hold the scrape, which serves the last known value, and the check
 *   updates the gauge when it ends;
 * - `GET /healthz`: 200 while the liveness callback says the loop is alive, else 503 with a one-line JSON
 *   reason (Kubernetes restarts the pod);
 * - `GET /readyz`: 200 when the readiness callback says ready, else 503 with its reasons (Kubernetes
 *   stops counting the pod as available);
 * - anything else: 404 (405 for another method on these paths).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { ProcessorMetrics } from "./metrics.ts";
import type { Liveness, Readiness } from "./readiness.ts";

/** The paths served; the Helm chart's probes use the same (test/unit/helm-chart.test.ts checks it). */
export const HEALTH_PATHS = { metrics: "/metrics", liveness: "/healthz", readiness: "/readyz" } as const;

export interface HealthServerOptions {
  metrics: ProcessorMetrics;
  /** Whether the consumer loop is alive (e.g. LoopWatchdog.liveness); called on every /healthz. */
  liveness: () => Liveness;
  /**
   * Whether the processor is ready (group membership, store pings); called on every /readyz and every
   * scrape, except that concurrent requests share one call in flight.
   */
  readiness: () => Readiness | Promise<Readiness>;
  /** How long a scrape waits for its readiness check before serving the last known value; default 1 s. */
  scrapeReadinessWaitMs?: number;
}

/** A healthy store answers its ping in milliseconds; a scrape does not wait for a hung one. */
const SCRAPE_READINESS_WAIT_MS = 1_000;

export class HealthServer {
  private server: Server | undefined;
  /** A readiness check in flight: concurrent /readyz requests and scrapes share it. */
  private readinessInFlight: Promise<Readiness> | undefined;

  constructor(private readonly options: HealthServerOptions) {}

  /** Listens on `port` (0: any free port) and `host`; resolves with the address actually bound. */
  async start(port: number, host = "0.0.0.0"): Promise<{ port: number; host: string }> {
    if (this.server !== undefined) throw new Error("health server already started");
    const server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) send(response, 500, { error: oneLine(error) });
        else response.destroy();
      });
    });
    // Scrapes and probes are short; a stuck client must not hold a socket for long.
    server.requestTimeout = 10_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    const address = server.address() as AddressInfo;
    return { port: address.port, host: address.address };
  }

  /** The bound port, once started. */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  /** Stops listening and closes every open connection (keep-alive ones included). */
  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? "/").split("?")[0];
    const known = Object.values(HEALTH_PATHS).includes(path as never);
    if (!known) return send(response, 404, { error: `not found: ${path}` });
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.setHeader("allow", "GET, HEAD");
      return send(response, 405, { error: `method not allowed: ${request.method}` });
    }
    if (path === HEALTH_PATHS.metrics) {
      await this.readinessForScrape();
      const { body, contentType } = await this.options.metrics.text();
      response.writeHead(200, { "content-type": contentType, "cache-control": "no-store" });
      response.end(request.method === "HEAD" ? undefined : body);
      return;
    }
    if (path === HEALTH_PATHS.liveness) {
      let liveness: Liveness;
      try {
        liveness = this.options.liveness();
      } catch (error) {
        liveness = { alive: false, reason: `liveness check failed: ${oneLine(error)}` };
      }
      if (liveness.alive) return send(response, 200, { status: "alive" });
      return send(response, 503, { status: "stuck", reason: oneLine(liveness.reason ?? "not alive") });
    }
    const readiness = await this.readiness();
    send(response, readiness.ready ? 200 : 503, { ready: readiness.ready, reasons: readiness.reasons });
  }

  /** Runs (or joins) a readiness check; its outcome sets `agentmeter_ready` whoever asked for it. */
  private readiness(): Promise<Readiness> {
    if (this.readinessInFlight !== undefined) return this.readinessInFlight;
    const check: Promise<Readiness> = (async (): Promise<Readiness> => {
      try {
        return await this.options.readiness();
      } catch (error) {
        return { ready: false, reasons: [`readiness check failed: ${oneLine(error)}`] };
      }
    })().then((readiness) => {
      // Always after the assignment below, even when the callback threw synchronously.
      if (this.readinessInFlight === check) this.readinessInFlight = undefined;
      this.options.metrics.readinessObserved(readiness.ready);
      return readiness;
    });
    this.readinessInFlight = check;
    return check;
  }

  /**
   * Before a scrape: a readiness check, waited for up to `scrapeReadinessWaitMs`. When it takes longer
   * the scrape goes on with the gauge's last value; the check still sets the gauge when it ends.
   */
  private async readinessForScrape(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.scrapeReadinessWaitMs ?? SCRAPE_READINESS_WAIT_MS);
    });
    try {
      await Promise.race([this.readiness(), waited]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

function oneLine(value: unknown): string {
  const text = value instanceof Error ? value.message : String(value);
  return text.replace(/\s+/g, " ").trim();
}
