// The node's statistics for Prometheus: a prom-client registry served over HTTP on a loopback
// port (GET /metrics), its figures read at each scrape from the same sources as the parameter
// tree. Names as the community lustre_exporter gives them, labelled component ("ost", "mdt",
// "mgs") and target (the target's name):
//   lustre_read_bytes_total, lustre_write_bytes_total, lustre_read_samples_total,
//   lustre_write_samples_total                       obdfilter.*.stats read_bytes / write_bytes
//   lustre_stats_total{operation}                     obdfilter.*.stats and mdt.*.md_stats counts
//   lustre_capacity_kilobytes, lustre_free_kilobytes, lustre_available_kilobytes,
//   lustre_inodes_free, lustre_inodes_maximum        the target's statfs
//   lustre_exports_total                              num_exports
//   lustre_txg_synced_total, lustre_txg_sync_seconds_total, lustre_txg_dirty_bytes,
//   lustre_txg_replayed_records, lustre_txg_timeout_seconds   the OSD's txg log
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { ParamError } from './errors.js';
import { clientUuids, partsOf, type TargetParts } from './nodes.js';
import type { KernelView } from './index.js';

/** Scrapes waiting behind the running one; more are answered 503 at once. */
export const SCRAPES_WAITING_MAX = 8;
/** HTTP connections the endpoint holds open at once. */
export const METRICS_CONNECTIONS_MAX = 16;

type Labels = { component: string; target: string };
type OpLabels = Labels & { operation: string };

class Metrics {
  readonly registry = new Registry();
  readonly #counters = {
    readBytes: this.#counter('lustre_read_bytes_total', 'Bytes read from the target (obdfilter read_bytes sum)'),
    writeBytes: this.#counter('lustre_write_bytes_total', 'Bytes written to the target (obdfilter write_bytes sum)'),
    readSamples: this.#counter('lustre_read_samples_total', 'Read RPCs served (obdfilter read_bytes samples)'),
    writeSamples: this.#counter('lustre_write_samples_total', 'Write RPCs served (obdfilter write_bytes samples)'),
    txgSynced: this.#counter('lustre_txg_synced_total', 'Transaction groups made durable since mount'),
    txgSyncSeconds: this.#counter('lustre_txg_sync_seconds_total', 'Time spent making transaction groups durable'),
  };
  readonly #stats = new Counter<keyof OpLabels>({
    name: 'lustre_stats_total', help: 'Operations served, by md_stats / obdfilter stats name',
    labelNames: ['component', 'target', 'operation'], registers: [this.registry],
  });
  readonly #gauges = {
    capacity: this.#gauge('lustre_capacity_kilobytes', 'Capacity of the target in kilobytes'),
    free: this.#gauge('lustre_free_kilobytes', 'Free space of the target in kilobytes'),
    available: this.#gauge('lustre_available_kilobytes', 'Space clients may still use, in kilobytes'),
    inodesFree: this.#gauge('lustre_inodes_free', 'Objects the target may still create'),
    inodesMax: this.#gauge('lustre_inodes_maximum', 'Objects the target may hold'),
    exports: this.#gauge('lustre_exports_total', 'Clients connected to the target (num_exports)'),
    dirty: this.#gauge('lustre_txg_dirty_bytes', 'Bytes of transaction groups not yet durable'),
    replayed: this.#gauge('lustre_txg_replayed_records', 'Log records replayed when the target was mounted'),
    txgTimeout: this.#gauge('lustre_txg_timeout_seconds', 'The txg timeout of the target\'s OSD'),
  };
  #queue: Promise<unknown> = Promise.resolve();
  #waiting = 0;

  get busy(): boolean {
    return this.#waiting > SCRAPES_WAITING_MAX;
  }

  #counter(name: string, help: string): Counter<keyof Labels> {
    return new Counter({ name, help, labelNames: ['component', 'target'], registers: [this.registry] });
  }

  #gauge(name: string, help: string): Gauge<keyof Labels> {
    return new Gauge({ name, help, labelNames: ['component', 'target'], registers: [this.registry] });
  }

  /** The exposition text, figures read now; scrapes run one at a time. */
  scrape(view: KernelView): Promise<string> {
    this.#waiting++;
    const run = this.#queue.then(async () => {
      this.#waiting--;
      this.registry.resetMetrics();
      for (const p of view.targets().map(partsOf)) await this.#collect(p);
      return this.registry.metrics();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #collect(p: TargetParts): Promise<void> {
    const t = p.target;
    const component = p.ost ? 'ost' : p.mdt ? 'mdt' : 'mgs';
    const labels: Labels = { component, target: t.svname };
    const statfs = await t.osd.statfs();
    const g = this.#gauges;
    g.capacity.set(labels, Math.floor(statfs.bytesTotal / 1024));
    g.free.set(labels, Math.floor(statfs.bytesFree / 1024));
    const avail = p.ost ? (await p.ost.grants.avail()).avail : statfs.bytesFree;
    g.available.set(labels, Math.floor(avail / 1024));
    g.inodesFree.set(labels, statfs.objectsFree);
    g.inodesMax.set(labels, statfs.objectsTotal);
    const osd = t.osd.stats();
    g.dirty.set(labels, osd.dirtyBytes);
    g.replayed.set(labels, osd.recordsReplayed);
    g.txgTimeout.set(labels, t.osd.tunables().txgTimeoutMs / 1000);
    this.#counters.txgSynced.inc(labels, osd.txgsSynced);
    this.#counters.txgSyncSeconds.inc(labels, osd.syncTimeTotalMs / 1000);
    if (p.ost) {
      g.exports.set(labels, clientUuids(p.ost.services).size);
      for (const [name, c] of p.ost.ofdStats.entries()) {
        if (name === 'read_bytes') {
          this.#counters.readBytes.inc(labels, c.sum);
          this.#counters.readSamples.inc(labels, c.count);
        } else if (name === 'write_bytes') {
          this.#counters.writeBytes.inc(labels, c.sum);
          this.#counters.writeSamples.inc(labels, c.count);
        } else {
          this.#stats.inc({ ...labels, operation: name }, c.count);
        }
      }
    }
    if (p.mdt) {
      g.exports.set(labels, clientUuids(p.mdt.services).size);
      for (const [name, c] of p.mdt.mdStats.entries()) this.#stats.inc({ ...labels, operation: name }, c.count);
    }
    if (p.mgsServices.length > 0) g.exports.set({ component: 'mgs', target: 'MGS' }, clientUuids(p.mgsServices).size);
  }
}

/** Whether host names this machine's loopback (metrics are served to this node only). */
function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** Serves the node's metrics at http://HOST:PORT/metrics (port 0: one the system picks). */
export async function startMetrics(view: KernelView, opts: { host: string; port: number }): Promise<{ url: string; close(): Promise<void> }> {
  if (!isLoopback(opts.host)) throw new ParamError('EINVAL', `metrics host '${opts.host}' is not a loopback address (127.0.0.0/8, ::1, localhost)`);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new ParamError('EINVAL', `metrics port '${opts.port}' is not 0..65535`);
  const metrics = new Metrics();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    if (metrics.busy) {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('too many scrapes waiting\n');
      return;
    }
    metrics.scrape(view).then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`scrape failed: ${(err as Error).message}\n`),
    );
  });
  server.maxConnections = METRICS_CONNECTIONS_MAX;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
