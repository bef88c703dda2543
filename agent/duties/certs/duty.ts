// The certificates duty: for each configured certificate, plan its renewal
// (plan.ts: the CA's ARI window, else the lifetime rule), order it when due
// in a short-lived child process (order-runner.ts), install the new pair
// atomically (files.ts), copy it where the stack mounts it, tell the proxy
// to reload, and check with a TLS probe what is served. Failures persist and
// back off (backoff.ts), so a restart never hammers the CA. One order at a
// time, certificates in config order.
import { readFileSync, statSync } from 'node:fs';
import type { CertEvent, CertificateInfo } from '../../api/protocol.js';
import type { Duty, DutyContext, GaugeSpec, HealthChecks, StatusContribution } from '../../duty.js';
import { conflict, failed, notFound, type Progress } from '../../errors.js';
import { AccountStore } from './account.js';
import { ariCertId } from './ari-id.js';
import { nextAttemptAfterFailure, pruneFailures, validationLimitUntil } from './backoff.js';
import { expiringState } from './checks.js';
import type { CertsConfig } from './config.js';
import { CertStore, generateKey, type StoredPair } from './files.js';
import { OrderFailed, runOrder } from './order-runner.js';
import { ariRefresh, dueNow, formatUtc, renewalPlan, type RenewalPlan } from './plan.js';
import { formatProbe, probeServed } from './probe.js';
import { reloadAction, type StackAccess } from './reload.js';
import { directoryRenewalInfo, fetchRenewalInfo } from './renewal-info.js';
import { CertStateStore, type CertState } from './state.js';
import { certChecks, certGauges, certInfo, type CertView } from './view.js';

type CertConfig = CertsConfig['certificates'][number];

export const DIRECTORY_ALIASES: Record<string, string> = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
};

/** The longest the duty sleeps between looks (a clock jump is noticed within this). */
const MAX_SLEEP_MS = 60_000;
const PROBE_EVERY_MS = 24 * 3_600_000;
/** Waits between the looks of one probe before a mismatch is reported. */
const PROBE_RETRY_MS = [1000, 2000, 4000];
const STOP_WAIT_MS = 3000;

interface Entry {
  config: CertConfig;
  store: CertStore;
  current: StoredPair | null;
  plan?: RenewalPlan;
  renewing?: Promise<CertificateInfo>;
}

export interface CertsDutyOptions {
  /** Status polls of an order start at this delay (tests against a local CA). */
  pollMinMs?: number;
}

export class CertsDuty implements Duty {
  readonly name = 'certs';
  private readonly entries = new Map<string, Entry>();
  private readonly state: CertStateStore;
  private readonly account: AccountStore;
  private readonly directoryUrl: string;
  private caBundle: string | undefined;
  private renewalInfoUrl: string | undefined | null = null;
  private timer: NodeJS.Timeout | undefined;
  private ordering: Promise<unknown> = Promise.resolve();
  private looking = false;
  private readonly abort = new AbortController();
  private stopped = false;

  constructor(
    private readonly config: CertsConfig,
    private readonly ctx: DutyContext,
    private readonly stack: StackAccess | undefined,
    private readonly opts: CertsDutyOptions = {},
  ) {
    this.state = new CertStateStore(ctx.db);
    this.account = new AccountStore(ctx.config.dataDir);
    this.directoryUrl = DIRECTORY_ALIASES[config.directory] ?? config.directory;
  }

  async start(): Promise<void> {
    if (this.config.caBundle) {
      try {
        this.caBundle = readFileSync(this.config.caBundle, 'utf8');
      } catch (err) {
        throw new Error(`certs.caBundle ${this.config.caBundle}: ${(err as Error).message}`);
      }
    }
    this.account.load(); // the key exists from the first start on, 0600
    for (const c of this.config.certificates) {
      const store = CertStore.open(this.ctx.config.dataDir, c.name);
      const entry: Entry = { config: c, store, current: null };
      this.entries.set(c.name, entry);
      this.reread(entry);
      // A copy a kill interrupted is made whole before anything reads it.
      if (entry.current && c.copyTo) this.copy(entry).catch((err: unknown) => this.ctx.reportError(this.name, err));
    }
    this.wake(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort.abort(failed('the agent is stopping; the order was abandoned (the old certificate stays)'));
    const inFlight = [...this.entries.values()].flatMap((e) => (e.renewing ? [e.renewing] : []));
    if (!inFlight.length) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(inFlight), new Promise((r) => (t = setTimeout(r, STOP_WAIT_MS)))]);
    clearTimeout(t);
  }

  list(): CertificateInfo[] {
    const now = Date.now();
    return this.views().map((v) => certInfo(v, now));
  }

  /**
   * Renews NAME now. Refused when it is not due (unless FORCE), while a
   * failure backoff holds it (unless FORCE), and while it is already renewing.
   * The CA's limit on failed validations holds even with FORCE.
   */
  renew(name: string, force: boolean, actor: string, progress: Progress<CertEvent>): Promise<CertificateInfo> {
    const e = this.entries.get(name);
    if (!e) throw notFound(`no certificate named ${name} (configured: ${[...this.entries.keys()].join(', ') || 'none'})`);
    if (e.renewing) throw conflict(`certificate ${name} is already being renewed; wait for it (deckhand certs)`);
    const now = Date.now();
    const plan = this.planOf(e, now);
    const s = this.state.get(name);
    const backoff = this.backoffUntil(e, s, now);
    if (!force && plan.at > now) throw conflict(`certificate ${name} is not due until ${formatUtc(plan.at)} UTC (${plan.explanation}); --force renews it now`);
    // Past 5 failed validations of a name in an hour the CA refuses anyway (Let's Encrypt's limit): not even --force.
    const limit = validationLimitUntil(s.failures, now, e.config.domains);
    if (limit > now) throw conflict(`certificate ${name}: 5 validations failed within the hour, the CA's limit per name; the next attempt can start at ${formatUtc(limit)} UTC (fix the cause first: deckhand certs shows the last error)`);
    if (!force && backoff !== undefined && backoff > now) throw conflict(`certificate ${name} failed ${s.failures.length} time(s); the next attempt waits until ${formatUtc(backoff)} UTC (--force tries now)`);
    return this.order(e, force ? 'forced' : 'manual', actor, progress);
  }

  checks(): HealthChecks {
    return certChecks(this.views(), Date.now());
  }

  gauges(): GaugeSpec[] {
    return certGauges(() => this.views());
  }

  status(): StatusContribution {
    return { certificates: this.list() };
  }

  // ---------------------------------------------------------------------------

  private views(): CertView[] {
    const now = Date.now();
    return [...this.entries.values()].map((e) => {
      const state = this.state.get(e.config.name);
      const backoffUntil = this.backoffUntil(e, state, now);
      return {
        name: e.config.name,
        domains: e.config.domains,
        keyType: e.config.keyType,
        current: e.current,
        plan: e.plan ?? this.planOf(e, now),
        ...(backoffUntil !== undefined ? { backoffUntil } : {}),
        state,
        renewing: e.renewing !== undefined,
      };
    });
  }

  private reread(e: Entry): void {
    try {
      e.current = e.store.readCurrent();
    } catch (err) {
      this.ctx.reportError(this.name, err);
      e.current = null;
    }
    e.plan = this.planOf(e, Date.now());
  }

  /** The plan now; KEEP stores a point newly chosen inside an ARI window (only the scheduler's look does, never a read). */
  private planOf(e: Entry, now: number, keep = false): RenewalPlan {
    const c = e.current;
    const s = this.state.get(e.config.name);
    const ari = c && s.ari?.serial === c.serial && s.ari.window ? { window: s.ari.window, ...(s.ari.chosen ? { chosen: s.ari.chosen } : {}) } : undefined;
    const plan = renewalPlan({
      wanted: { domains: e.config.domains, keyType: e.config.keyType },
      ...(c ? { current: { domains: c.domains, keyType: c.keyType, notBefore: c.notBefore.getTime(), notAfter: c.notAfter.getTime() } } : {}),
      renewBefore: this.config.renewBefore,
      ...(ari ? { ari } : {}),
      now,
      random: Math.random,
    });
    // The point chosen inside a window is kept: the next look keeps it.
    if (keep && plan.chosen && c && s.ari && (!s.ari.chosen || s.ari.chosen.at !== plan.chosen.at)) this.state.save(e.config.name, { ...s, ari: { ...s.ari, chosen: plan.chosen } });
    return plan;
  }

  private backoffUntil(e: Entry, s: CertState, now: number): number | undefined {
    if (!s.failures.length) return undefined;
    return nextAttemptAfterFailure(s.failures, now, e.config.domains);
  }

  /** Looks again in MS (at most MAX_SLEEP_MS). */
  private wake(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.look(), Math.max(0, Math.min(ms, MAX_SLEEP_MS)));
    this.timer.unref();
  }

  /** One look at every certificate: ARI refresh, renewal when due, expiry alert, daily probe. */
  private async look(): Promise<void> {
    if (this.looking || this.stopped) return;
    this.looking = true;
    let next = MAX_SLEEP_MS;
    try {
      for (const e of this.entries.values()) {
        if (this.stopped) return;
        const name = e.config.name;
        await this.refreshAri(e).catch((err: unknown) => this.ctx.reportError(this.name, err));
        const now = Date.now();
        e.plan = this.planOf(e, now, true);
        const s = this.state.get(name);
        const backoff = this.backoffUntil(e, s, now);
        this.setExpiring(e, now);
        if (!e.renewing && dueNow(e.plan, backoff, now)) {
          this.ctx.log.info({ certificate: name, reason: e.plan.reason }, e.plan.explanation);
          await this.order(e, 'schedule', 'schedule', () => {}).catch(() => undefined);
          next = 0; // plan again from what the order left
          continue;
        }
        const at = Math.max(e.plan.at, backoff ?? 0);
        next = Math.min(next, at - now);
        if (e.config.probe && e.current && (!s.probe || now - s.probe.at > PROBE_EVERY_MS)) await this.probe(e).catch((err: unknown) => this.ctx.reportError(this.name, err));
        if (s.ari) next = Math.min(next, ariRefresh({ lastFetchAt: s.ari.lastFetchAt, lastFailed: s.ari.lastFailed, ...(s.ari.retryAfterMs !== undefined ? { retryAfterMs: s.ari.retryAfterMs } : {}), now }) - now);
      }
    } finally {
      this.looking = false;
      this.wake(Math.max(1000, next));
    }
  }

  private setExpiring(e: Entry, now: number): void {
    const c = e.current;
    const name = e.config.name;
    const validity = c ? { notBefore: c.notBefore.getTime(), notAfter: c.notAfter.getTime() } : undefined;
    const expiring = expiringState({ ...(validity ? { current: validity } : {}), now });
    if (expiring && c) {
      const left = Math.max(0, (c.notAfter.getTime() - now) / 86_400_000);
      this.ctx.conditions.raise('cert.expiring', name, 'warning', `certificate ${name} expires ${formatUtc(c.notAfter.getTime())} UTC (${left.toFixed(1)} days left) and has not been renewed`, { notAfter: c.notAfter.toISOString() });
    } else if (!expiring) {
      this.ctx.conditions.clear('cert.expiring', name, `certificate ${name} is valid until ${c ? formatUtc(c.notAfter.getTime()) : '?'} UTC`);
    }
  }

  /** Asks the CA's renewalInfo when it is time to (see plan.ts ariRefresh). */
  private async refreshAri(e: Entry): Promise<void> {
    const c = e.current;
    if (!c || this.config.renewBefore !== 'auto') return;
    const s = this.state.get(e.config.name);
    const now = Date.now();
    const fresh = s.ari?.serial === c.serial ? s.ari : undefined;
    if (fresh && ariRefresh({ lastFetchAt: fresh.lastFetchAt, lastFailed: fresh.lastFailed, ...(fresh.retryAfterMs !== undefined ? { retryAfterMs: fresh.retryAfterMs } : {}), now }) > now) return;
    try {
      if (this.renewalInfoUrl === null) this.renewalInfoUrl = await directoryRenewalInfo(this.directoryUrl, this.caBundle);
      if (!this.renewalInfoUrl) return; // the CA offers no ARI: the lifetime rule
      const answer = await fetchRenewalInfo(this.renewalInfoUrl, c.certPem, this.caBundle);
      const kept = fresh?.chosen && answer.window && fresh.window && fresh.window.start === answer.window.start && fresh.window.end === answer.window.end ? { chosen: fresh.chosen } : {};
      this.state.save(e.config.name, {
        ...this.state.get(e.config.name),
        ari: { serial: c.serial, ...(answer.window ? { window: answer.window } : {}), ...kept, ...(answer.explanationUrl ? { explanationUrl: answer.explanationUrl } : {}), lastFetchAt: Date.now(), lastFailed: false, ...(answer.retryAfterMs !== undefined ? { retryAfterMs: answer.retryAfterMs } : {}) },
      });
    } catch (err) {
      this.renewalInfoUrl = this.renewalInfoUrl ?? null;
      const prev = fresh ?? { serial: c.serial };
      this.state.save(e.config.name, { ...this.state.get(e.config.name), ari: { ...prev, lastFetchAt: Date.now(), lastFailed: true, lastError: (err as Error).message } });
      this.ctx.log.warn({ certificate: e.config.name, err: (err as Error).message }, 'renewalInfo not answered; the window last known (or the lifetime rule) holds');
    }
  }

  /** Queues one order (one at a time across certificates). */
  private order(e: Entry, trigger: string, actor: string, progress: Progress<CertEvent>): Promise<CertificateInfo> {
    const run = this.ordering.then(() => this.runOrder(e, trigger, actor, progress));
    this.ordering = run.catch(() => undefined);
    e.renewing = run;
    void run.finally(() => {
      if (e.renewing === run) e.renewing = undefined;
      this.wake(0);
    }).catch(() => undefined);
    return run;
  }

  private async runOrder(e: Entry, trigger: string, actor: string, progress: Progress<CertEvent>): Promise<CertificateInfo> {
    const c = e.config;
    const why = this.planOf(e, Date.now());
    const name = c.name;
    const step = (s: string, status: CertEvent['status'], detail?: string) => progress({ type: 'step', step: s, status, ...(detail !== undefined ? { detail } : {}) });
    const startedAt = Date.now();
    const previous = e.current;
    const account = this.account.load();
    const replaces = previous && !this.changed(e) ? ariCertId(previous.certPem) : undefined;
    const keyPem = generateKey(c.keyType);
    try {
      step('order', 'started', c.domains.join(', '));
      let result;
      try {
        result = await runOrder(
          {
            directoryUrl: this.directoryUrl,
            ...(this.caBundle ? { caBundle: this.caBundle } : {}),
            email: this.config.email,
            accountKeyPem: account.keyPem,
            ...(account.urls[this.directoryUrl] ? { accountUrl: account.urls[this.directoryUrl] } : {}),
            challenge: this.config.challenge,
            domains: [...c.domains],
            keyPem,
            ...(replaces ? { replaces } : {}),
            ...(this.config.profile ? { profile: this.config.profile } : {}),
            ...(this.opts.pollMinMs ? { pollMinMs: this.opts.pollMinMs } : {}),
          },
          {
            signal: this.abort.signal,
            onStep: (s, d) => {
              // The CA refused `replaces`: worth a line in the log, the order goes on without it.
              if (s === 'order-retry') this.ctx.log.warn({ certificate: name, detail: d }, 'the CA refused the order as a renewal; ordered again as a new certificate');
              step(s, 'ok', d);
            },
          },
        );
      } catch (err) {
        const url = (err as { accountUrl?: string }).accountUrl;
        if (url) this.account.remember(this.directoryUrl, url);
        throw err;
      }
      if (result.accountUrl) this.account.remember(this.directoryUrl, result.accountUrl);
      step('order', 'ok', result.usedReplaces ? 'renewal (replaces the previous certificate)' : undefined);

      step('install', 'started');
      const installed = e.store.install({ keyPem, fullchainPem: result.fullchainPem }, { domains: c.domains, keyType: c.keyType });
      e.current = installed;
      step('install', 'ok', `serial ${installed.serial}, valid until ${formatUtc(installed.notAfter.getTime())} UTC`);
      const s = this.state.get(name);
      this.state.save(name, { ...s, failures: [], lastAttempt: { at: startedAt, ok: true, trigger }, lastSuccessAt: Date.now() });
      e.plan = this.planOf(e, Date.now(), true);
      this.ctx.events.record({
        type: 'cert.renewed',
        severity: 'info',
        subject: name,
        message: `certificate ${name} ${previous ? 'renewed' : 'issued'} for ${c.domains.join(', ')}, valid until ${formatUtc(installed.notAfter.getTime())} UTC (by ${actor})`,
        data: { serial: installed.serial, notAfter: installed.notAfter.toISOString(), trigger, reason: why.reason, explanation: why.explanation, replaced: previous?.serial ?? null, usedReplaces: result.usedReplaces },
      });
      this.ctx.conditions.clear('cert.renew_failed', name, `certificate ${name} renewed`, { serial: installed.serial });
      this.setExpiring(e, Date.now());
    } catch (err) {
      // Abandoned because the agent stops: not a failure to back off from.
      if (!this.stopped) this.recordFailure(e, err, startedAt, trigger);
      step('order', 'failed', (err as Error).message);
      throw err;
    }
    // The new pair is in place; what follows tells the stack about it.
    let copied = true;
    if (c.copyTo) {
      step('copy', 'started', c.copyTo);
      try {
        await this.copy(e);
        step('copy', 'ok');
      } catch (err) {
        copied = false;
        const msg = (err as Error).message;
        step('copy', 'failed', msg);
        this.ctx.conditions.raise('cert.renew_failed', name, 'critical', `certificate ${name} was renewed, but not copied to ${c.copyTo}: ${msg}; the stack still has the old files`, { stage: 'copy' });
      }
    }
    // Reloading a proxy whose files were not replaced would change nothing.
    if (c.reload && !copied) step('reload', 'skipped', 'the copy failed');
    else if (c.reload) {
      step('reload', 'started');
      try {
        const done = await reloadAction(c.reload, this.stack)();
        step('reload', 'ok', done);
      } catch (err) {
        const msg = (err as Error).message;
        step('reload', 'failed', msg);
        this.ctx.conditions.raise('cert.renew_failed', name, 'critical', `certificate ${name} was renewed, but the reload failed: ${msg}; the proxy may still serve the old certificate`, { stage: 'reload' });
      }
    }
    if (c.probe) {
      step('probe', 'started', formatProbe(c.probe));
      const r = await this.probe(e);
      step('probe', r.ok ? 'ok' : 'failed', r.detail);
    }
    return certInfo(this.views().find((v) => v.name === name)!, Date.now());
  }

  private changed(e: Entry): boolean {
    const c = e.current;
    if (!c) return true;
    return this.planOf(e, Date.now()).reason === 'changed';
  }

  private recordFailure(e: Entry, err: unknown, at: number, trigger: string): void {
    const name = e.config.name;
    const message = (err as Error).message ?? String(err);
    const s = this.state.get(name);
    const failedValidations = err instanceof OrderFailed ? err.failedValidations : [];
    // The backoff counts from when the attempt ended: one that spent a minute in retries still waits its full delay.
    const failures = pruneFailures([...s.failures, { at: Date.now(), ...(failedValidations.length ? { failedValidations } : {}) }], Date.now());
    this.state.save(name, { ...s, failures, lastAttempt: { at, ok: false, error: message, trigger } });
    const until = nextAttemptAfterFailure(failures, Date.now(), e.config.domains);
    const kept = e.current ? `the current certificate (valid until ${formatUtc(e.current.notAfter.getTime())} UTC) stays in use` : 'there is no certificate yet';
    this.ctx.log.warn({ certificate: name, err: message, failures: failures.length, nextAttempt: new Date(until).toISOString() }, 'certificate order failed');
    this.ctx.conditions.raise('cert.renew_failed', name, 'critical', `certificate ${name} could not be ${e.current ? 'renewed' : 'issued'}: ${message}; ${kept}; next attempt ${formatUtc(until)} UTC`, { failures: failures.length, nextAttempt: new Date(until).toISOString() });
  }

  private async copy(e: Entry): Promise<void> {
    const dir = e.config.copyTo!;
    // The copy takes the group of its directory when the agent may give it
    // (the proxy's group reads the key, 0640); otherwise the agent's own, 0600.
    let gid: number | undefined;
    try {
      const g = statSync(dir).gid;
      if (g !== process.getgid?.() && (process.getuid?.() === 0 || process.getgroups?.().includes(g))) gid = g;
    } catch {
      /* created by copyTo */
    }
    e.store.copyTo(dir, gid !== undefined ? { gid } : {});
  }

  private async probe(e: Entry): Promise<{ ok: boolean; detail: string }> {
    const c = e.current!;
    const name = e.config.name;
    // A proxy's reload returns before its workers serve the new pair (nginx
    // -s reload, a HUP): a mismatch is believed after a few looks.
    let r = await probeServed(e.config.probe!, e.config.domains, c.fingerprint256);
    for (const wait of PROBE_RETRY_MS) {
      if (r.ok || this.stopped) break;
      await new Promise((res) => setTimeout(res, wait));
      r = await probeServed(e.config.probe!, e.config.domains, c.fingerprint256);
    }
    this.state.save(name, { ...this.state.get(name), probe: { at: Date.now(), ok: r.ok, detail: r.detail } });
    if (r.ok) this.ctx.conditions.clear('cert.served_mismatch', name, `${formatProbe(e.config.probe!)} serves certificate ${name} (serial ${c.serial})`);
    else this.ctx.conditions.raise('cert.served_mismatch', name, 'warning', `${formatProbe(e.config.probe!)} does not serve the stored certificate ${name}: ${r.detail}; reload the proxy`, { probe: formatProbe(e.config.probe!) });
    return r;
  }
}
