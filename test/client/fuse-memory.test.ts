// MemoryFs (the FUSE layer's floor that bench:fuse measures) through the kernel: what it keeps
// is what a caller reads back, its errors are a local file system's, and forgotten, released and
// unlinked inodes go. The calls run in a child shell: this process is the FUSE daemon and must
// never block on its own mount.
//
// Needs /dev/fuse and root (mount(8) with fd=3); skipped otherwise.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FuseSession, MemoryFs, fuseMountAt } from '../../src/client/fuse/index.js';
import { whyNoFuse } from '../lib/fuse.js';

/** A shell script in a child, in `dir`; its status, stdout and stderr. */
function sh(script: string, dir: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', `cd '${dir}' && ${script}`], { timeout: 30_000 }, (e, out, err) => {
      resolve({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : 1) : 0, out, err });
    });
  });
}

const skip = whyNoFuse();
t.test('MemoryFs through the kernel', { skip: skip ?? false }, async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'fuse-memory-'));
  const fs = new MemoryFs();
  const session = await FuseSession.mount(mnt, fs, { fsName: 'memtest', subtype: 'memory' });
  t.teardown(async () => {
    if (fuseMountAt(mnt)) await session.unmount({ lazy: true });
    await rm(mnt, { recursive: true, force: true });
  });

  // Data across pieces and a hole: 3 MiB of random bytes written at 1 MiB + 7, read back.
  const data = await sh(
    'src=$(mktemp) && head -c 3145728 /dev/urandom > $src && dd if=$src of=f bs=1M seek=1048583 oflag=seek_bytes status=none'
    + ' && dd if=$src of=g bs=1M status=none && cmp $src g && stat -c %s f g'
    + ' && cmp $src <(tail -c +1048584 f) && head -c 1048583 f | tr -d "\\0" | wc -c; rm -f $src',
    mnt,
  );
  t.equal(data.code, 0, `data written reads back (${data.err.trim()})`);
  t.same(data.out.trim().split('\n'), ['4194311', '3145728', '0'], 'sizes; the hole before the data reads as zeros');

  const trunc = await sh('truncate -s 5 g && stat -c %s g && truncate -s 10 g && tail -c 5 g | od -An -tx1 | tr -d " \\n"', mnt);
  t.same(trunc.out.trim().split('\n'), ['5', '0000000000'], 'truncate down then up: the bytes past the old end are zeros');

  const tree = await sh('mkdir -p d/e && touch d/e/x d/y && mv d/y d/e/z && echo $(ls d/e) && find d | wc -l', mnt);
  t.same(tree.out.trim().split('\n'), ['x z', '4'], 'mkdir, create, rename and readdir');

  const errors = await sh(
    'mkdir d 2>&1 | grep -c "File exists"; rmdir d 2>&1 | grep -c "not empty"; rm nothere 2>&1 | grep -c "No such file";'
    + ' node -e "require(\\"fs\\").openSync(\\"f\\", \\"wx\\")" 2>&1 | grep -c "EEXIST: file already exists"; rm d 2>&1 | grep -c "Is a directory"; cat d/e/x/q 2>&1 | grep -c "Not a directory"',
    mnt,
  );
  t.same(errors.out.trim().split('\n'), ['1', '1', '1', '1', '1', '1'], 'EEXIST, ENOTEMPTY, ENOENT, EEXIST on O_EXCL, EISDIR, ENOTDIR');

  const perms = await sh('touch p && chmod 600 p && stat -c %a p && setpriv --reuid=65534 --regid=65534 --clear-groups cat p 2>&1 | grep -c "Permission denied"', mnt);
  t.same(perms.out.trim().split('\n'), ['600', '1'], 'chmod, and the kernel checks permissions against it');

  const open = await sh('echo kept > u && exec 3<u && rm u && cat <&3 && ls u 2>&1 | grep -c "No such file"', mnt);
  t.same(open.out.trim().split('\n'), ['kept', '1'], 'an unlinked file stays readable through an open descriptor');

  // More names than one READDIR answer holds: listed over several, each name once.
  const big = await sh('mkdir big && (cd big && touch f{1..1500}) && ls big | sort -u | wc -l', mnt);
  t.equal(big.out.trim(), '1500', 'a directory of 1,500 names lists each once');

  const before = fs.inodeCount;
  const rmAll = await sh('rm -rf d f g p big && ls -A | wc -l', mnt);
  t.equal(rmAll.out.trim(), '0', 'rm -rf empties the file system');
  // The kernel evicts an inode with no name and no user at once, and sends its FORGET.
  const deadline = Date.now() + 5000;
  while (fs.inodeCount > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.ok(before > 1, `there were inodes before (${before})`);
  t.equal(fs.inodeCount, 1, 'only the root is left once the kernel forgot the rest');
});
