import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Address } from "../../src/address.ts";
import { AdminServer } from "../../src/admin-server.ts";
import { createBackend } from "../../src/backend.ts";
import { BackendSet } from "../../src/backend-set.ts";
import { BackendStates } from "../../src/backend-states.ts";
import { collectStatus } from "../../src/balancer-status.ts";
import { renderMetrics } from "../../src/metrics.ts";
import { AdminApiProvider } from "../../src/providers/admin-api-provider.ts";
import { StaticProvider } from "../../src/providers/static-provider.ts";
import { BalancerScenario } from "./balancer-scenario.ts";

/** A balancer on 127.0.0.1 with an admin server, for admin API tests. */
export interface AdminFixture {
  scenario: BalancerScenario;
  api: AdminApiProvider;
  admin: AdminServer;
  request: (path: string, init?: RequestInit) => Promise<Response>;
}

export interface AdminFixtureOptions {
  /** Ids of the echo backends the static provider publishes, of "a", "b" and "c". @default ["a"] */
  staticIds?: string[];
  tokenFile?: string;
}

/**
 * Starts a balancer with the greeting echo backends "a", "b" and "c", a static provider, the
 * API provider and an admin server on `transport`, a Unix socket in a temporary folder or
 * 127.0.0.1. Each part's disposal is pushed to `cleanup`, to run in reverse order.
 */
export async function startAdminFixture(transport: "unix" | "tcp", cleanup: (() => void | Promise<unknown>)[], options: AdminFixtureOptions = {}): Promise<AdminFixture> {
  const scenario = new BalancerScenario();
  cleanup.push(() => scenario.close());
  scenario.startBackends(["a", "b", "c"]);
  const staticIds = options.staticIds ?? ["a"];
  const api = new AdminApiProvider();
  await scenario.start(new StaticProvider(new BackendSet(staticIds.map((id) => createBackend(id, scenario.target(id))))), api);

  const dir = mkdtempSync(join(tmpdir(), "tinylb-admin-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const address: Address = transport === "unix" ? { kind: "unix", path: join(dir, "admin.sock") } : { kind: "tcp", host: "127.0.0.1", port: 0 };
  const admin = await AdminServer.start({
    address,
    tokenFile: options.tokenFile,
    context: {
      api,
      states: new BackendStates(scenario.server, scenario.log.logger),
      union: scenario.union,
      status: () => collectStatus(scenario.server, scenario.union),
      metrics: () => renderMetrics({ server: scenario.server, union: scenario.union }),
      shuttingDown: () => scenario.server.shuttingDown,
      listenAddresses: () => scenario.server.listeners.map((listener) => listener.address),
    },
    logger: scenario.log.logger,
  });
  cleanup.push(() => admin.stop());

  const request = (path: string, init: RequestInit = {}): Promise<Response> => {
    if (admin.address.kind === "unix") {
      return fetch(`http://localhost${path}`, { ...init, unix: admin.address.path } as RequestInit);
    }

    return fetch(`http://127.0.0.1:${admin.address.port}${path}`, init);
  };

  return { scenario, api, admin, request };
}
