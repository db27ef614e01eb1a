// What bench/recovery.ts and its child processes (server.ts) agree on.

/** Concurrent transactions of the writer: bench:log's OSD figure was taken with as many. */
export const WRITERS = 256;
/** The writer's objects, one per writer: the bench creates them before the last checkpoint. */
export const OBJECT_SEQ = 0x200000bee;
export const objectName = (w: number): string => `bench-recovery-${w}`;
