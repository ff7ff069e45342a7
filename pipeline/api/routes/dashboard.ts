import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { FastifyPluginAsync } from "fastify";

const here = new URL("../dashboard/", import.meta.url);

/** The page and its two scripts, read once at start (a few hundred KB), served without authentication: they hold no data. */
function assets(): Record<string, { type: string; body: Buffer }> {
  // The browser build sits beside the package's main file; the package does not export its path.
  const chartJs = join(dirname(createRequire(import.meta.url).resolve("chart.js")), "chart.umd.min.js");
  return {
    "/": { type: "text/html; charset=utf-8", body: readFileSync(new URL("index.html", here)) },
    "/assets/dashboard.js": {
      type: "text/javascript; charset=utf-8",
      body: readFileSync(new URL("dashboard.js", here)),
    },
    "/assets/chart.umd.min.js": { type: "text/javascript; charset=utf-8", body: readFileSync(chartJs) },
  };
}

export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  for (const [url, asset] of Object.entries(assets())) {
    app.get(url, { schema: { hide: true } }, async (_request, reply) =>
      reply
        .type(asset.type)
        .header("cache-control", "no-cache")
        .header("content-security-policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
        .send(asset.body),
    );
  }
};
