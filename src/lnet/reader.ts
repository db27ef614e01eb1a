// Reading a socket into memory the LND owns (net.Socket's `onread`), for the connections it
// opens: no Readable stream machinery per read and no new ArrayBuffer per read (Node's own
// reads allocate one each). Reads share a slab until it runs low; a delivered payload is a
// slice of it, so a payload kept alive pins at most SLAB_BYTES. A large payload whose header has
// been read gets a buffer of its own, exactly its size, which the kernel fills directly: it
// pins nothing else and arrives in as few reads as the socket allows.
//
// Node 20's net.Server takes no `onread` for the sockets it accepts; those read through 'data'
// events, into the same parser.

/** The connection a reader feeds. */
export interface ReadSink {
  onData(chunk: Buffer): void;
  /** Bytes of the payload being received still to come, when nothing past it is buffered; else 0. */
  payloadBytesWanted(): number;
}

const SLAB_BYTES = 32 * 1024;
/** A slab with less room than this is left for a new one. */
const READ_MIN_BYTES = 8 * 1024;
/** Payloads with at least this much still to come are read into a buffer of their own. */
const OWN_BUFFER_MIN_BYTES = 16 * 1024;

export class SocketReader {
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private used = 0;
  /** The buffer of the payload being read into its own memory, and how much of it is filled. */
  private own: Buffer | null = null;
  private ownUsed = 0;
  private sink: ReadSink | null = null;

  /** For net.connect(): where each read goes, and what becomes of it. */
  readonly onread = {
    buffer: (): Buffer => this.next(),
    callback: (nread: number, buf: Uint8Array): boolean => this.read(nread, buf as Buffer),
  };

  attach(sink: ReadSink): void {
    this.sink = sink;
  }

  private next(): Buffer {
    if (this.own) return this.own.subarray(this.ownUsed);
    const wanted = this.sink ? this.sink.payloadBytesWanted() : 0;
    if (wanted >= OWN_BUFFER_MIN_BYTES) {
      this.own = Buffer.allocUnsafeSlow(wanted);
      this.ownUsed = 0;
      return this.own;
    }
    if (this.slab.length - this.used < READ_MIN_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.used = 0;
    }
    return this.slab.subarray(this.used);
  }

  private read(nread: number, buf: Buffer): boolean {
    if (this.own) {
      this.ownUsed += nread;
      if (this.ownUsed >= this.own.length) this.own = null;
    } else {
      this.used += nread;
    }
    // Invariant: the LND attaches its connection right after connect(), before any read.
    this.sink!.onData(buf.subarray(0, nread));
    return true;
  }
}
