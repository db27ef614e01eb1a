#!/usr/bin/env node
// mkfs.lustre: formats a device (a folder) as a Lustre target: the OSD and its mountdata.
//   mkfs.lustre --fsname=testfs --mgs --mdt --index=0 /srv/mdt0
//   mkfs.lustre --fsname=testfs --ost --index=0 --mgsnode=127.0.0.2@tcp /srv/ost0
import { Command, Option } from 'commander';
import { formatTarget, planFormat, type Mountdata } from '../../services/target/index.js';
import { parseCount, runCli, UsageError } from '../cli.js';

/** Lustre's ldd_flags (lustre_disk.h), as mkfs.lustre prints them. */
const LDD_F = { SV_TYPE_MDT: 0x1, SV_TYPE_OST: 0x2, SV_TYPE_MGS: 0x4, NEED_INDEX: 0x10, VIRGIN: 0x20, UPDATE: 0x40 } as const;

function flagsOf(md: Mountdata): { value: number; names: string[] } {
  const names: string[] = [];
  let value = LDD_F.VIRGIN | LDD_F.UPDATE;
  if (md.mdt) { value |= LDD_F.SV_TYPE_MDT; names.push('MDT'); }
  if (md.ost) { value |= LDD_F.SV_TYPE_OST; names.push('OST'); }
  if (md.mgs) { value |= LDD_F.SV_TYPE_MGS; names.push('MGS'); }
  if ((md.mdt || md.ost) && md.index < 0) { value |= LDD_F.NEED_INDEX; names.push('needs_index'); }
  names.push('first_time', 'update');
  return { value, names };
}

/** The "Permanent disk data" block, laid out as Lustre's mkfs.lustre prints it. */
export function describe(md: Mountdata): string {
  const flags = flagsOf(md);
  const params = [...md.mgsNids.map((n) => `mgsnode=${n}`), ...Object.entries(md.params).map(([k, v]) => `${k}=${v}`)];
  return [
    '',
    '   Permanent disk data:',
    `Target:     ${md.svname}`,
    `Index:      ${md.index < 0 ? 'unassigned' : md.index}`,
    `Lustre FS:  ${md.fsname}`,
    'Mount type: osd-txg',
    `Flags:      0x${flags.value.toString(16)}`,
    `              (${flags.names.join(' ')} )`,
    `Parameters: ${params.join(' ')}`,
    '',
  ].join('\n');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseParams(list: string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const p of list) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param takes KEY=VALUE, not '${p}'`, 2);
    params[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return params;
}

const program = new Command('mkfs.lustre')
  .description('Format a device (a folder) as a Lustre target: MGS, MDT or OST (--mgs --mdt together: a combined MGS/MDT)')
  .version('0.1.0')
  .argument('<device>', 'the device folder')
  .requiredOption('--fsname <name>', 'the file system name (1-8 letters, digits, _)')
  .option('--mgs', 'a management server')
  .option('--mdt', 'a metadata target')
  .option('--ost', 'an object storage target')
  .addOption(new Option('--index <n>', 'the target index (assigned by the MGS at first mount when absent)').argParser(parseCount('--index')))
  .option('--mgsnode <nid>', 'where the MGS is (repeat for failover NIDs)', collect, [] as string[])
  .option('--param <key=value>', 'a permanent parameter (repeatable)', collect, [] as string[])
  .option('--reformat', 'replace a device formatted already (its contents are lost)')
  .option('--dryrun', 'print what would be written, change nothing')
  .action(async (device: string, opts: {
    fsname: string; mgs?: boolean; mdt?: boolean; ost?: boolean; index?: number; mgsnode: string[]; param: string[];
    reformat?: boolean; dryrun?: boolean;
  }) => {
    const options = {
      fsname: opts.fsname, mgs: opts.mgs, mdt: opts.mdt, ost: opts.ost, index: opts.index, mgsNids: opts.mgsnode,
      params: parseParams(opts.param), reformat: opts.reformat,
    };
    const planned = planFormat(options);
    console.log(describe(planned));
    if (opts.dryrun) return;
    console.log(`checking for existing Lustre data in ${device}`);
    const { mountdata, osd } = await formatTarget(device, options);
    console.log(`formatted the OSD: label ${osd.label}, uuid ${osd.uuid}`);
    console.log(`Writing ${device}/mountdata for ${mountdata.svname} (profile: ${mountdata.profile.join(', ')})`);
  });

await runCli(program);
