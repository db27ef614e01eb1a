// How the MDT learns its OSTs from the MGS: it follows the file system's config log (the
// lov_add_obd records the MGS writes as OSTs register) and connects an OSP to each OST named,
// also to OSTs added while it runs. Until the MGS answers, the OSTs of mountdata param
// 'mdt.osts' are used (index.ts).
import type { Subscription } from 'rxjs';
import type { Network } from '../../ptlrpc/index.js';
import { applyConfigRecords, clientLogName, emptyFsConfig, MgsClient } from '../mgs/index.js';

export interface ConfigFollower {
  stop(): Promise<void>;
}

export function followOsts(ni: Network, opts: {
  mgsNids: string[]; fsname: string; clientUuid: string;
  addOst: (index: number, nid: string) => void;
  log: (level: 'info' | 'warn' | 'error', msg: string) => void;
}): ConfigFollower {
  let client: MgsClient | undefined;
  let sub: Subscription | undefined;
  let stopped = false;
  const view = emptyFsConfig();
  const started = (async () => {
    try {
      client = await MgsClient.connect(ni, { mgsNids: opts.mgsNids, clientUuid: opts.clientUuid });
    } catch (err) {
      opts.log('warn', `MDT: MGS not reachable (${(err as Error).message}); OSTs from mdt.osts only`);
      return;
    }
    if (stopped) return;
    sub = client.watch([clientLogName(opts.fsname)]).subscribe({
      next: (u) => {
        applyConfigRecords(view, u.records);
        for (const [index, target] of view.osts) if (target.nids[0]) opts.addOst(index, target.nids[0]);
      },
      error: (err: unknown) => opts.log('warn', `MDT: config log watch ended: ${String(err)}`),
    });
  })();
  return {
    async stop() {
      stopped = true;
      await started;
      sub?.unsubscribe();
      await client?.close();
    },
  };
}
