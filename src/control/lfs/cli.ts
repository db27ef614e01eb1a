// The lfs utility's program: subcommands and options as lfs has them, arguments checked here,
// relative paths made absolute against the working directory, one `lfs` control request per
// path (per page of a walk), and the structured answers printed in Lustre's layouts
// (format.ts). The kernel is reached through `LfsDeps`, so that tests can run the whole
// program against serveLfs in-process, and the bin (bin/lfs.ts) against the control socket.
//
// Walks (getstripe of a directory, find) come back in pages with a continuation cursor; the
// program asks for the next page until the cursor is null, printing as it goes.
import { Command, CommanderError, Option } from 'commander';
import { isAbsolute, resolve } from 'node:path';
import { UsageError } from '../cli.js';
import {
  parseCountTest, parseFidArg, parseSizeTest, parseStripeCount, parseStripeIndex, parseStripeSize,
} from './args.js';
import {
  formatDf, formatFid2path, formatGetstripe, formatPath2fid, strerror, VERBOSE_DEFAULT, VERBOSE_DETAIL, VERBOSE_DFID,
  VERBOSE_GENERATION, VERBOSE_OBJID, VERBOSE_PATTERN, VERBOSE_STRIPE_COUNT, VERBOSE_STRIPE_OFFSET, VERBOSE_STRIPE_SIZE,
} from './format.js';
import type { FindRequest, LfsRequest, LfsResult, WalkCursor } from './types.js';

export interface LfsDeps {
  /** Sends one lfs request to the kernel. */
  lfs(request: LfsRequest): Promise<LfsResult>;
  /** The client mounts of the kernel (lfs df without a path, fid2path FSNAME). */
  clients(): Promise<Array<{ spec: string; mountpoint: string }>>;
  cwd: string;
  out(text: string): void;
  err(text: string): void;
}

/** MGSNID:/fsname[/path]: a file system named without a mount. */
const REMOTE = /^[^/]+@[a-z]+\d*(?:[:,][^/]+)*:\/[A-Za-z0-9_-]{1,8}(\/.*)?$/;

type Result<Op extends LfsResult['op']> = Extract<LfsResult, { op: Op }>;

class Lfs {
  failed = 0;
  constructor(readonly deps: LfsDeps) {}

  /** A path argument as the kernel takes it: absolute, or MGSNID:/fsname/path as given. */
  absolute(path: string): string {
    if (REMOTE.test(path)) return path;
    return isAbsolute(path) ? resolve(path) : resolve(this.deps.cwd, path);
  }

  async ask<Op extends LfsResult['op']>(request: Extract<LfsRequest, { op: Op }>): Promise<Result<Op>> {
    const r = await this.deps.lfs(request);
    if (r.op !== request.op) throw new UsageError(`the kernel answered ${r.op} to ${request.op}`);
    return r as Result<Op>;
  }

  /** Lustre's "lfs: getstripe for 'x' failed: No such file or directory"; the others go on. */
  failure(command: string, path: string, err: unknown): void {
    const code = (err as { code?: string }).code;
    if (!code || !/^E[A-Z0-9]+$/.test(code)) throw err;
    const detail = (err as Error).message.replace(/^E[A-Z0-9]+: /, '');
    this.deps.err(`lfs: ${command} for '${path}' failed: ${strerror(code)}${detail ? ` (${detail})` : ''}\n`);
    this.failed++;
  }

  /** Shown paths: the kernel's (absolute) with the user's spelling of the start put back. */
  static shown(given: string, sent: string, path: string): string {
    if (!path.startsWith(sent)) return path;
    return (given.replace(/\/+$/, '') + path.slice(sent.replace(/\/+$/, '').length)) || given;
  }
}

function setstripeCommand(lfs: Lfs): Command {
  return new Command('setstripe')
    .description('create a file with the given layout, or set a directory\'s default layout (what new files in it get)')
    .argument('<path...>', 'a new file, an existing file without objects yet, or a directory')
    .option('-c, --stripe-count <count>', 'stripes (OSTs) per file; -1 for every OST, 0 for the default', parseStripeCount)
    .option('-S, --stripe-size <size>', 'bytes per stripe, a multiple of 64K (K, M, G suffixes)', parseStripeSize)
    .addOption(new Option('-i, --stripe-index <index>', 'the OST of the first stripe; -1 for any').argParser(parseStripeIndex))
    .addOption(new Option('-o, --stripe-offset <index>', 'the same as -i').argParser(parseStripeIndex).hideHelp())
    .option('-d, --delete', 'delete a directory\'s default layout')
    .action(async (paths: string[], o: { stripeCount?: number; stripeSize?: number; stripeIndex?: number; stripeOffset?: number; delete?: boolean }) => {
      const index = o.stripeIndex ?? o.stripeOffset;
      if (o.delete && (o.stripeCount !== undefined || o.stripeSize !== undefined || index !== undefined)) {
        throw new UsageError('setstripe: cannot specify -d with -c, -S or -i options', 2);
      }
      for (const p of paths) {
        try {
          await lfs.ask({
            op: 'setstripe', path: lfs.absolute(p),
            ...(o.stripeCount !== undefined && { stripeCount: o.stripeCount }), ...(o.stripeSize !== undefined && { stripeSize: o.stripeSize }),
            ...(index !== undefined && { stripeOffset: index }), ...(o.delete && { delete: true }),
          });
        } catch (err) {
          lfs.failure('setstripe', p, err);
        }
      }
    });
}

interface GetstripeOptions {
  stripeCount?: boolean; stripeSize?: boolean; stripeIndex?: boolean; layout?: boolean; generation?: boolean; fid?: boolean;
  directory?: boolean; quiet?: boolean; verbose?: boolean; recursive?: boolean;
}

/** lfs getstripe's option logic (lfs_getstripe_internal): the verbose bits and fp_max_depth. */
export function getstripeFormat(o: GetstripeOptions): { verbose: number; maxDepth: number } {
  let verbose = 0;
  let maxDepth = 1;
  const field = (on: boolean | undefined, bit: number): void => {
    if (on) {
      verbose |= bit;
      maxDepth = 0;
    }
  };
  if (o.verbose) verbose = VERBOSE_DEFAULT | VERBOSE_DETAIL;
  else {
    field(o.stripeCount, VERBOSE_STRIPE_COUNT);
    field(o.stripeSize, VERBOSE_STRIPE_SIZE);
    field(o.stripeIndex, VERBOSE_STRIPE_OFFSET);
    field(o.layout, VERBOSE_PATTERN);
    field(o.generation, VERBOSE_GENERATION);
    field(o.fid, VERBOSE_DFID);
  }
  if (o.directory) maxDepth = 0;
  if (o.recursive) maxDepth = -1;
  else if (verbose & VERBOSE_DETAIL) maxDepth = 1;
  if (!verbose) verbose = VERBOSE_DEFAULT;
  if (o.quiet) verbose = VERBOSE_OBJID;
  return { verbose, maxDepth };
}

function getstripeCommand(lfs: Lfs): Command {
  return new Command('getstripe')
    .description('show the layout of files, and the default layout of directories (with their entries unless -d)')
    .argument('<path...>', 'files or directories')
    .option('-c, --stripe-count', 'the stripe count only')
    .option('-S, --stripe-size', 'the stripe size only')
    .option('-i, --stripe-index', 'the first stripe\'s OST index only')
    .option('-L, --layout', 'the layout pattern only')
    .option('-g, --generation', 'the layout generation only')
    .option('-F, --fid', 'the FID only')
    .option('-d, --directory', 'a directory\'s own default, not its entries')
    .option('-q, --quiet', 'the objects table only')
    .option('-v, --verbose', 'every field, with the magic, lmm_seq, lmm_object_id and lmm_fid')
    .option('-r, --recursive', 'descend into subdirectories')
    .action(async (paths: string[], o: GetstripeOptions) => {
      const format = getstripeFormat(o);
      for (const p of paths) {
        const path = lfs.absolute(p);
        try {
          let cursor: WalkCursor | null | undefined;
          do {
            const r = await lfs.ask({ op: 'getstripe', path, maxDepth: format.maxDepth, ...(cursor && { cursor }) });
            lfs.deps.out(formatGetstripe(r.entries.map((e) => ({ ...e, path: Lfs.shown(p, path, e.path) })), format));
            cursor = r.cursor;
          } while (cursor);
        } catch (err) {
          lfs.failure('getstripe', p, err);
        }
      }
    });
}

function dfCommand(lfs: Lfs): Command {
  return new Command('df')
    .description('space (or inodes) of each MDT and OST of the file system, and the filesystem_summary')
    .argument('[path]', 'a path in a client mount, or MGSNID:/fsname; all mounts of the node when left out')
    .helpOption('--help', 'display help for command')
    .option('-h, --human-readable', 'sizes in bytes with K, M, G, ... (base 1024)')
    .option('-i, --inodes', 'inodes instead of blocks')
    .action(async (path: string | undefined, o: { humanReadable?: boolean; inodes?: boolean }) => {
      const paths = path !== undefined ? [lfs.absolute(path)] : (await lfs.deps.clients()).map((c) => c.mountpoint);
      for (const p of paths) {
        try {
          const r = await lfs.ask({ op: 'df', path: p });
          lfs.deps.out(formatDf(r.mount, r.targets, { human: o.humanReadable === true, inodes: o.inodes === true }));
        } catch (err) {
          lfs.failure('df', path ?? p, err);
        }
      }
    });
}

function findCommand(lfs: Lfs): Command {
  return new Command('find')
    .description('list the files under a directory that match every test given')
    .argument('<path>', 'where to start')
    .option('-n, --name <glob>', 'the last component matches the glob (*, ?, [...])')
    .addOption(new Option('-t, --type <type>', 'f (regular file), d (directory) or l (symbolic link)').choices(['f', 'd', 'l']))
    .option('-s, --size <size>', '[+-]N[kMGTPE]: more than (+), less than (-) or N units (rounded up)', parseSizeTest)
    .option('-c, --stripe-count <count>', '[+-]N: files with more (+), fewer (-) or N stripes', parseCountTest)
    .option('-D, --maxdepth <depth>', 'descend at most this many levels (0: the path itself)', (v: string) => {
      if (!/^[0-9]+$/.test(v)) throw new UsageError(`find: bad maxdepth '${v}'`, 2);
      return Number(v);
    })
    .action(async (start: string, o: { name?: string; type?: 'f' | 'd' | 'l'; size?: FindRequest['size']; stripeCount?: FindRequest['stripeCount']; maxdepth?: number }) => {
      const path = lfs.absolute(start);
      const base: FindRequest = {
        op: 'find', path, maxDepth: o.maxdepth ?? -1,
        ...(o.name !== undefined && { name: o.name }), ...(o.type && { type: o.type }), ...(o.size && { size: o.size }),
        ...(o.stripeCount && { stripeCount: o.stripeCount }),
      };
      try {
        let cursor: WalkCursor | null | undefined;
        do {
          const r = await lfs.ask({ ...base, ...(cursor && { cursor }) });
          lfs.deps.out(r.entries.map((e) => `${Lfs.shown(start, path, e.path)}\n`).join(''));
          cursor = r.cursor;
        } while (cursor);
      } catch (err) {
        lfs.failure('find', start, err);
      }
    });
}

function path2fidCommand(lfs: Lfs): Command {
  return new Command('path2fid')
    .description('the FID of each path, as [0xSEQ:0xOID:0xVER]')
    .argument('<path...>', 'files or directories')
    .action(async (paths: string[]) => {
      const several = paths.length > 1;
      for (const p of paths) {
        try {
          const r = await lfs.ask({ op: 'path2fid', path: lfs.absolute(p) });
          lfs.deps.out(formatPath2fid([{ path: p, fid: r.fid }], several));
        } catch (err) {
          lfs.failure('path2fid', p, err);
        }
      }
    });
}

function fid2pathCommand(lfs: Lfs): Command {
  return new Command('fid2path')
    .description('the path(s) of a FID: under the mount point named, or relative to the root of the file system named')
    .argument('<fsname|mountpoint>', 'a client mount point, an fsname mounted on this node, or MGSNID:/fsname')
    .argument('<fid...>', 'FIDs as [0x200000400:0x1:0x0]')
    .option('-f, --print-fid', 'print the FID before each path')
    .action(async (root: string, fids: string[], o: { printFid?: boolean }) => {
      const parsed = fids.map((f) => ({ given: f, fid: parseFidArg(f) }));
      let target: string;
      let showMount: boolean;
      if (/^[A-Za-z0-9_-]{1,8}$/.test(root) && !root.includes('/')) {
        const mounts = (await lfs.deps.clients()).filter((c) => c.spec.endsWith(`:/${root}`));
        if (mounts.length === 0) throw new UsageError(`fid2path: cannot resolve mount point for '${root}': no client mount of ${root} on this node (name it as MGSNID:/${root})`);
        target = mounts[0]!.mountpoint;
        showMount = false;
      } else {
        target = lfs.absolute(root);
        showMount = !REMOTE.test(root);
      }
      for (const { given, fid } of parsed) {
        try {
          const r = await lfs.ask({ op: 'fid2path', root: target, fid });
          lfs.deps.out(formatFid2path(r.paths, showMount ? r.mount : undefined, o.printFid ? { printFid: given } : {}));
        } catch (err) {
          lfs.failure('fid2path', `${root} ${given}`, err);
        }
      }
    });
}

/** The lfs program over `deps`. */
export function lfsProgram(deps: LfsDeps, version = ''): { program: Command; lfs: Lfs } {
  const lfs = new Lfs(deps);
  const program = new Command('lfs')
    .description('Lustre\'s file utility: layouts (setstripe, getstripe), space (df), find, and FIDs (path2fid, fid2path)')
    .configureOutput({ writeOut: deps.out, writeErr: deps.err });
  if (version) program.version(version, '--version');
  for (const c of [setstripeCommand, getstripeCommand, dfCommand, findCommand, path2fidCommand, fid2pathCommand]) {
    program.addCommand(c(lfs).configureOutput({ writeOut: deps.out, writeErr: deps.err }));
  }
  program.exitOverride();
  for (const c of program.commands) c.exitOverride();
  return { program, lfs };
}

/** Runs lfs with `args` (after the program name); resolves with the exit status. */
export async function runLfs(args: string[], deps: LfsDeps, version = ''): Promise<number> {
  const { program, lfs } = lfsProgram(deps, version);
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof UsageError) {
      deps.err(`lfs: ${err.message}\n`);
      return err.exitCode;
    }
    const code = (err as { code?: unknown }).code;
    if (err instanceof Error && typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
      deps.err(`lfs: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  return lfs.failed > 0 ? 1 : 0;
}
