// What the utilities read of a device besides its log: that it is a device at all, the txg its
// checkpoint reflects, and the consistency of its objects.
import { readCheckpointHint } from '../log/index.js';
import { Osd, devicePaths, readDevice, type CheckProblem, type CheckProgress } from '../osd/index.js';

/** Throws a clear error (naming the path) unless `device` is a device this software reads. */
export async function checkDevice(device: string): Promise<void> {
  await readDevice(device);
}

/** The txg the device's checkpoint reflects, as its log folder records it (no database opened). */
export function deviceCheckpointTxg(device: string): Promise<number> {
  return readCheckpointHint(devicePaths(device).log);
}

export interface ObjectsVerdict {
  problems: Array<CheckProblem & { file?: string; offset?: number }>;
  summary: { objects: number; lastSyncedTxg: number; checkpointTxg: number } | null;
  summaryLine: string;
}

/**
 * Opens the device as a mount would (replaying its log) and runs the OSD's consistency check;
 * onProgress hears how far it got (with the object count, to size a progress bar).
 */
export async function verifyObjects(device: string, onProgress?: (phase: string, scanned: number, objects: number) => void): Promise<ObjectsVerdict> {
  const osd = await Osd.open(device);
  try {
    const objects = osd.stats().objects;
    const tell: CheckProgress | undefined = onProgress && ((phase, scanned) => onProgress(phase, scanned, objects));
    const problems = await osd.check(tell);
    const s = osd.stats();
    const summary = { objects: s.objects, lastSyncedTxg: s.lastSyncedTxg, checkpointTxg: s.checkpointTxg };
    return {
      problems,
      summary,
      summaryLine: `${s.objects} objects checked at txg ${s.lastSyncedTxg}: ${problems.length === 0 ? 'consistent' : `${problems.length} problems`}`,
    };
  } finally {
    await osd.close();
  }
}
