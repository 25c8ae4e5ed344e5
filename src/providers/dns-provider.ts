import { createHash } from "node:crypto";
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import { formatAddress } from "../address.ts";
import { type Backend, BackendError, createBackend, MAX_ID_LENGTH } from "../backend.ts";
import { BackendSet } from "../backend-set.ts";
import { type Clock, systemClock } from "../clock.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { DnsQueryError, isNoRecords, unansweredLookupFix } from "./dns-errors.ts";
import { NewCauses } from "./failure-streak.ts";
import type { Provider, PublishBackendSet } from "./provider.ts";
import { ProviderHealth } from "./provider-health.ts";
import { MAX_PROVIDER_BACKENDS } from "./set-publisher.ts";
import { SRV_TARGET_HOLD_MS, SrvTargetHold } from "./srv-target-hold.ts";

/** Settings of a DNS provider. */
export interface DnsProviderOptions {
  /** Host name whose A and AAAA records are the backends, or with `srv` the SRV record name. */
  name: string;
  /** Port of every backend; required without `srv`, where SRV records carry the ports. */
  port?: number;
  /**
   * Resolve `name` as an SRV record, then each record's target as A and AAAA.
   * @default false
   */
  srv?: boolean;
  /**
   * Milliseconds between the end of one lookup and the start of the next.
   * @default 30000
   */
  intervalMs?: number;
  /**
   * Milliseconds one query may take before it is retried once and then failed. The resolver
   * waits longer for the retry: with Bun 1.4.4, 5000 fails a query to a silent server after
   * about 13 s and 2000 after 5 s, and no value fails it in under 2 s.
   * @default 5000
   */
  timeoutMs?: number;
  /**
   * DNS servers as `ip:port` or `[ipv6]:port`. When absent, queries go to the name servers
   * of /etc/resolv.conf. /etc/hosts is never read: the Node.js `dns` documentation says the
   * resolve functions always send DNS queries, and Bun 1.4.4's `Resolver` does the same.
   */
  servers?: string[];
  /** @default a logger that writes nothing */
  logger?: Logger;
  /** Largest set published. A response with more addresses fails the lookup. @default MAX_PROVIDER_BACKENDS (10,000) */
  maxBackends?: number;
  /**
   * Milliseconds an SRV target whose name stops resolving keeps its last addresses, counted
   * from the first lookup in which it did not resolve.
   * @default SRV_TARGET_HOLD_MS (30 s)
   */
  holdMs?: number;
  /** Time source of the SRV target hold. @default systemClock */
  clock?: Clock;
}

/** The outcome of one A or AAAA query: the addresses, none for an answer without records, or the error of a failed query. */
type FamilyAnswer = { type: "A" | "AAAA"; addresses: string[]; error?: DnsQueryError };

/** The addresses of a host name, and when it has none, the reason as a sentence. */
type HostAddresses = { addresses: string[]; missing?: string };

/**
 * Backends from DNS, re-resolved on an interval. Every A and AAAA address of a name (or of
 * the targets of its SRV records) becomes a backend. Its id is derived from the name and
 * the address, so a reordered answer is the same set.
 *
 * A lookup that fails, or returns no address at all, publishes nothing: the last answer
 * keeps serving. The first failure of a streak is logged as a warning, and so is the first
 * failure with a cause the streak has not had. Repeats are only counted, and the recovery is
 * logged as info.
 *
 * A and AAAA are queried separately. When one of them fails while the other returns
 * addresses, those addresses are used, and the failing query is warned about once until it
 * answers again. The lookup fails only when no query returned an address and one failed.
 *
 * An SRV target whose name has no valid address while the SRV answer still lists it keeps
 * its last addresses for `holdMs` (see {@link SrvTargetHold}).
 */
export class DnsProvider implements Provider {
  readonly name: string;
  /** The last lookup's result and the count of failed ones, for status and /metrics. */
  readonly health = new ProviderHealth();
  readonly #options: Required<Omit<DnsProviderOptions, "port" | "servers" | "holdMs" | "clock">> & Pick<DnsProviderOptions, "port" | "servers">;
  /** Resolver of the current lookup; each lookup gets a new one, so no answer is cached between lookups. */
  #resolver: Resolver;
  readonly #log: Logger;
  /** Addresses already logged as invalid targets, so each is logged once. */
  readonly #invalidAddresses = new Set<string>();
  #publish: PublishBackendSet | undefined;
  #timer: Timer | undefined;
  #streak = 0;
  /** Causes of the current streak that were logged. */
  readonly #causes = new NewCauses();
  /** True once a lookup of this process published a set. */
  #answered = false;
  /** Queries (`type name`) that failed while another record type of the name returned addresses. */
  readonly #failingQueries = new Set<string>();
  readonly #targetHold: SrvTargetHold;

  /** Lookups that failed or returned no address. */
  get failures(): number {
    return this.health.failures;
  }

  /** @throws {Error} when neither `port` nor `srv` is given, or a server is not an IP address with a port. */
  constructor(options: DnsProviderOptions) {
    this.#options = { srv: false, intervalMs: 30_000, timeoutMs: 5000, logger: silentLogger, maxBackends: MAX_PROVIDER_BACKENDS, ...options };
    if (!this.#options.srv && this.#options.port === undefined) {
      throw new Error(`invalid DNS provider for ${options.name}: a port is required unless srv is set`);
    }
    this.name = this.#options.srv ? `dns-srv:${options.name}` : `dns:${options.name}:${this.#options.port}`;
    // Creating the first resolver here checks the server addresses at construction.
    this.#resolver = this.#newResolver();
    this.#log = this.#options.logger.with({ component: "dns-provider", provider: this.name });
    this.#targetHold = new SrvTargetHold(this.#log, options.clock ?? systemClock, options.holdMs ?? SRV_TARGET_HOLD_MS);
  }

  /** Starts the first lookup without waiting for it, so a slow resolver does not hold up start-up. */
  start(publish: PublishBackendSet): void {
    this.#publish = publish;
    void this.#loop();
  }

  stop(): void {
    this.#publish = undefined;
    clearTimeout(this.#timer);
    this.#resolver.cancel();
  }

  /** Resolves once and publishes the answer; returns false when the lookup failed or was empty. */
  async lookupOnce(): Promise<boolean> {
    this.#resolver = this.#newResolver();
    let backends: Backend[];
    try {
      backends = this.#options.srv ? await this.#resolveSrv() : await this.#resolveHost(this.#options.name, this.#options.port!, this.#options.name);
      if (backends.length === 0) {
        throw new Error("the DNS answer contains no address");
      }
      const maxBackends = this.#options.maxBackends;
      if (backends.length > maxBackends) {
        throw new Error(`the DNS answer has ${backends.length} addresses, more than the ${maxBackends} backends a provider may publish`);
      }
    } catch (error) {
      this.#failed(error);

      return false;
    }

    this.health.succeeded();
    if (this.#streak > 0) {
      this.#log.info("DNS lookup recovered", { name: this.#options.name, failedLookups: this.#streak, count: backends.length });
      this.#streak = 0;
      this.#causes.clear();
    }
    // Several SRV records can lead to the same address and port.
    const unique = new Map(backends.map((backend) => [backend.id, backend]));
    this.#publish?.(new BackendSet(unique.values()));
    this.#answered = true;

    return true;
  }

  /**
   * Creates a resolver for one lookup. Bun 1.4.4's `Resolver` caches answers by their TTL.
   * It also keeps an answer with no records and no SOA without expiry (seen with a mock
   * DNS server), so a reused resolver would stop querying a name after such an answer.
   */
  #newResolver(): Resolver {
    const resolver = new Resolver({ timeout: this.#options.timeoutMs, tries: 2 });
    const servers = this.#options.servers;
    if (servers !== undefined && servers.length > 0) {
      resolver.setServers(servers);
    }

    return resolver;
  }

  async #loop(): Promise<void> {
    await this.lookupOnce();
    if (this.#publish !== undefined) {
      this.#timer = setTimeout(() => void this.#loop(), this.#options.intervalMs);
    }
  }

  #failed(error: unknown): void {
    if (this.#publish === undefined) {
      return;
    }

    this.health.failed(error);
    this.#streak++;
    if (!this.#causes.add(error)) {
      return;
    }
    // Before the first answer, the set is empty or the one the state file saved.
    const message = this.#answered ? "DNS lookup failed; keeping the last answer" : "DNS lookup failed; the name's backends stay as they are until a lookup succeeds";
    const fix = unansweredLookupFix(error);
    const fields = { name: this.#options.name, resolver: this.#resolver.getServers().join(","), err: error, ...(fix === undefined ? {} : { fix }) };
    this.#log.warn(message, this.#streak === 1 ? fields : { ...fields, failedLookups: this.#streak });
  }

  async #resolveSrv(): Promise<Backend[]> {
    let records: Awaited<ReturnType<Resolver["resolveSrv"]>>;
    try {
      records = await this.#resolver.resolveSrv(this.#options.name);
    } catch (error) {
      throw new DnsQueryError("SRV", this.#options.name, error);
    }
    // NOTE: SRV priority and weight are ignored; every record is a backend in the rotation.
    const groups = await Promise.all(records.map((record) => this.#resolveTarget(record.name, record.port)));
    this.#targetHold.retain(new Set(records.map((record) => `${record.name}:${record.port}`)));

    return groups.flat();
  }

  /**
   * Resolves one SRV target. A target without a valid address keeps its last backends for the hold.
   *
   * @throws {DnsQueryError} when a query failed and no query returned an address.
   */
  async #resolveTarget(host: string, port: number): Promise<Backend[]> {
    const target = `${host}:${port}`;
    const { addresses, missing } = await this.#addressesOf(host);
    const backends = addresses.flatMap((ip) => this.#backendOf(host, target, ip, port));
    if (backends.length > 0) {
      return this.#targetHold.resolved(target, backends);
    }

    return this.#targetHold.unresolved(target, missing ?? `the name ${host} has no valid address`);
  }

  /**
   * @throws {DnsQueryError} when a query failed and no query returned an address.
   * @throws {Error} naming the cause when the name does not exist or has no A or AAAA record.
   */
  async #resolveHost(host: string, port: number, idPrefix: string): Promise<Backend[]> {
    const { addresses, missing } = await this.#addressesOf(host);
    if (missing !== undefined) {
      throw new Error(missing);
    }

    return addresses.flatMap((ip) => this.#backendOf(host, idPrefix, ip, port));
  }

  /**
   * Queries A and AAAA of `host`. "No records of this type" is an empty list. A failed
   * query is skipped while the other type returns addresses.
   *
   * @throws {DnsQueryError} when a query failed and no query returned an address.
   */
  async #addressesOf(host: string): Promise<HostAddresses> {
    if (isIP(host) !== 0) {
      return { addresses: [host] };
    }

    const answers = await Promise.all([this.#query(host, "A"), this.#query(host, "AAAA")]);
    const addresses = answers.flatMap((answer) => answer.addresses);
    const errors = answers.flatMap((answer) => (answer.error === undefined ? [] : [answer.error]));
    if (addresses.length === 0 && errors.length > 0) {
      throw errors.length === 1 ? errors[0]! : new Error(errors.map((error) => error.message).join(", and "));
    }
    this.#noteFailingQueries(host, answers);
    if (addresses.length > 0) {
      return { addresses };
    }

    // Bun 1.4.4 reports ENOTFOUND both for NXDOMAIN and for an answer without records (checked
    // against dnsmasq, which sent rcode 3 and rcode 0), so the message names both.
    return { addresses, missing: `the name ${host} does not exist or has no A or AAAA record` };
  }

  /** Returns the backend of one address as a list, or an empty list, after a warning logged once, for an invalid target such as 0.0.0.0. */
  #backendOf(host: string, idPrefix: string, ip: string, port: number): Backend[] {
    try {
      return [createBackend(backendId(idPrefix, ip), formatAddress({ kind: "tcp", host: ip, port }))];
    } catch (error) {
      if (!(error instanceof BackendError)) {
        throw error;
      }
      if (!this.#invalidAddresses.has(ip)) {
        this.#invalidAddresses.add(ip);
        this.#log.warn("skipping a DNS address that is not a valid backend target", { name: host, address: ip, err: error });
      }

      return [];
    }
  }

  async #query(host: string, type: "A" | "AAAA"): Promise<FamilyAnswer> {
    try {
      const addresses = type === "A" ? await this.#resolver.resolve4(host) : await this.#resolver.resolve6(host);

      return { type, addresses };
    } catch (error) {
      if (isNoRecords(error)) {
        return { type, addresses: [] };
      }

      return { type, addresses: [], error: new DnsQueryError(type, host, error) };
    }
  }

  /** Warns once when a query of `host` starts failing beside one that answered, and logs when it answers again. */
  #noteFailingQueries(host: string, answers: FamilyAnswer[]): void {
    for (const answer of answers) {
      const key = `${answer.type} ${host}`;
      if (answer.error !== undefined && !this.#failingQueries.has(key)) {
        this.#failingQueries.add(key);
        this.#log.warn(`DNS ${answer.type} query failed; using the other records of the name`, { name: host, err: answer.error });
      } else if (answer.error === undefined && this.#failingQueries.delete(key)) {
        this.#log.info(`DNS ${answer.type} query succeeds again`, { name: host });
      }
    }
  }
}

/**
 * Derives a backend id from a name and an address, as `name@address`. Characters an id
 * may not contain become `-`. A name too long for an id is shortened and given a hash
 * suffix, so ids stay unique.
 */
export function backendId(name: string, ip: string): string {
  let prefix = name.replace(/[^A-Za-z0-9._:@-]/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  const room = MAX_ID_LENGTH - ip.length - 1;
  if (prefix.length > room || prefix === "") {
    const hash = createHash("sha256").update(name).digest("hex").slice(0, 12);
    prefix = `${prefix.slice(0, Math.max(0, room - hash.length - 1))}-${hash}`.replace(/^-/, "");
  }

  return `${prefix}@${ip}`;
}
