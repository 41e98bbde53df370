// The Edge CNI's TUN device (EdgeMesh's name: edge_tun0), opened through bun:ffi on
// /dev/net/tun. The device is not persistent: it exists while our descriptor is open, so a
// killed agent (kill -9) leaves neither the device nor its routes behind, and a restart starts
// clean. With `offload`, the device carries a 10-byte virtio_net_hdr before every packet and
// hands us TCP segmentation-offload "superpackets" (up to 64 KiB, TUN_F_TSO4/6 + TUN_F_CSUM):
// one read, one tunnel frame and one write per 64 KiB instead of per 1.5 KiB, where a syscall
// costs over a microsecond.
//
// The data-plane side (read/write per packet) is `TunIo`: no allocation per call; offsets go
// through bun:ffi's ptr(view, offset), which returns a number. Readiness comes from a small
// watcher thread (tun-watch-worker.ts); the main thread reads until EAGAIN itself.

import { ptr } from "bun:ffi";
import type { Logger } from "../log/index.ts";
import { HostError } from "./errors.ts";
import { EAGAIN, EBUSY, EINTR, EINVAL, ENOENT, EPERM, O_CLOEXEC, O_NONBLOCK, O_RDWR, tunLibc, type TunLibc } from "./tun-libc.ts";
import { ARMED, CTRL_WORDS, SIGNALLED, STATE, STOP, type WatchInit } from "./tun-watch-layout.ts";

/** EdgeMesh's TUN device name (defaults.TunDeviceName). */
export const TUN_DEVICE_NAME = "edge_tun0";
/** sizeof(struct virtio_net_hdr): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset. */
export const VNET_HDR_BYTES = 10;

const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const TUNSETIFF = 0x400454ca;
const TUNSETOFFLOAD = 0x400454d0;
const TUNSETVNETHDRSZ = 0x400454d8;
const TUNSETVNETLE = 0x400454dc;
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
/** struct ifreq: char ifr_name[16] then a union whose first member we use is short ifr_flags. */
const IFREQ_BYTES = 40;
/** Deeper than the kernel's 500 packets: a burst from a fast pod waits instead of being dropped. */
const TX_QUEUE_LEN = 1000;

export interface TunOptions {
  name?: string;
  mtu: number;
  /** Ask for TSO/checksum offload (virtio_net_hdr on every packet). */
  offload: boolean;
  /** Prepended to `ip` commands (tests run them inside a namespace). */
  ipPrefix?: readonly string[];
  log?: Logger;
}

/** Per-packet I/O on the device. Every method is allocation-free. */
export interface TunIo {
  /** Reads one packet (with its virtio header when `vnetHdr`) into buf[offset..offset+max).
   * Returns its length, 0 when nothing waits (EAGAIN), or -errno. */
  read(buf: Uint8Array, offset: number, max: number): number;
  /** Writes one packet (with its virtio header when `vnetHdr`); bytes written or -errno. */
  write(buf: Uint8Array, offset: number, length: number): number;
  /** Writes `head` then buf[offset..offset+length) as one packet (writev); bytes or -errno. */
  writeWithHead(head: Uint8Array, buf: Uint8Array, offset: number, length: number): number;
  /** Writes a[aOff..aOff+aLen) then b[bOff..bOff+bLen) as one packet (writev); bytes or -errno. */
  writeSplit(a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): number;
}

export interface TunDevice extends TunIo {
  readonly name: string;
  readonly fd: number;
  readonly mtu: number;
  /** Every packet read or written starts with a VNET_HDR_BYTES virtio_net_hdr. */
  readonly vnetHdr: boolean;
  /** The kernel may hand us (and accepts) TSO superpackets and partial checksums. */
  readonly offload: boolean;
  /**
   * Calls `onReadable` on the main thread whenever packets wait; it reads until read() returns 0
   * (or a budget is spent) and returns how many packets it read. While it finds packets it is
   * called again from the event loop (setImmediate) without waking the watcher thread; the first
   * pass that finds none re-arms the watcher. Once per device.
   */
  watch(onReadable: () => number): void;
  /** Stops the watcher and closes the descriptor: the device and its routes disappear. */
  close(): Promise<void>;
}

export async function openTun(o: TunOptions): Promise<TunDevice> {
  const name = o.name ?? TUN_DEVICE_NAME;
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new HostError(`TUN device name "${name}" is not a valid interface name (1-15 chars)`);
  const loaded = tunLibc();
  if (!loaded) throw new HostError("the Edge CNI needs Linux and libc through bun:ffi (for /dev/net/tun)");
  const { libc, errno } = loaded;
  const fd = libc.open(Buffer.from("/dev/net/tun\0"), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const e = errno();
    throw new HostError(
      e === ENOENT
        ? "/dev/net/tun does not exist: load the tun module (modprobe tun) and give the agent's pod the host's /dev/net/tun"
        : e === EPERM || e === 13
          ? `cannot open /dev/net/tun (errno ${e}): the container's device cgroup refuses char 10:200; in Kubernetes mount the host's /dev/net/tun (deploy/components/edge-cni) on a runtime that allows it, or run the agent privileged`
          : `cannot open /dev/net/tun: errno ${e}`,
    );
  }
  try {
    const ifr = new Uint8Array(IFREQ_BYTES);
    ifr.set(new TextEncoder().encode(name));
    new DataView(ifr.buffer).setUint16(16, IFF_TUN | IFF_NO_PI | (o.offload ? IFF_VNET_HDR : 0), true);
    if (libc.ioctl(fd, TUNSETIFF, ptr(ifr)) !== 0) {
      const e = errno();
      throw new HostError(
        e === EBUSY
          ? `TUN device ${name} is held by another process (is another agent still running on this node?)`
          : e === EINVAL
            ? `${name} exists and is not a TUN device we can attach to; delete it (ip link del ${name})`
            : e === EPERM
              ? `creating TUN device ${name} was refused (errno ${e}): the agent needs CAP_NET_ADMIN`
              : `TUNSETIFF ${name} failed: errno ${e}`,
      );
    }
    let offload = false;
    if (o.offload) {
      const hdr = new Int32Array([VNET_HDR_BYTES]);
      libc.ioctl(fd, TUNSETVNETHDRSZ, ptr(hdr));
      // Little-endian virtio headers on every host, so two agents agree on the wire; a no-op on
      // little-endian hosts (the ioctl fails on kernels without cross-endian support: fine there).
      libc.ioctl(fd, TUNSETVNETLE, ptr(new Int32Array([1])));
      offload = libc.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) === 0;
      if (!offload) o.log?.warn("TUN offload (TSO) refused by the kernel; packets go one by one", { device: name, errno: errno() });
    }
    // No IPv6 on the device (the tunneled path is IPv4): no router solicitations or MLD reports
    // going into it. Skipped where IPv6 is off altogether (the file is missing).
    await Bun.write(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, "1").catch(() => {});
    await ip(o.ipPrefix, ["link", "set", "dev", name, "mtu", String(o.mtu), "txqueuelen", String(TX_QUEUE_LEN), "up"]);
    return new Tun(libc, errno, fd, name, o.mtu, o.offload, offload, o.log);
  } catch (err) {
    libc.close(fd);
    throw err;
  }
}


async function ip(prefix: readonly string[] | undefined, args: string[]): Promise<void> {
  const proc = Bun.spawn([...(prefix ?? []), "ip", ...args], { stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new HostError(`ip ${args.join(" ")} failed (exit ${code}): ${stderr.trim()}`);
}

class Tun implements TunDevice {
  readonly #libc: TunLibc;
  readonly #errno: () => number;
  /** struct iovec[2] for writeSplit: base (as two u32 halves) and length. */
  readonly #iov = new Uint32Array(8);
  readonly #iovPtr = ptr(this.#iov);
  #watcher: Worker | undefined;
  #ctrl: Int32Array | undefined;
  #stopFd = -1;
  #closed: Promise<void> | undefined;
  #onReadable: (() => number) | undefined;

  constructor(
    libc: TunLibc,
    errno: () => number,
    readonly fd: number,
    readonly name: string,
    readonly mtu: number,
    readonly vnetHdr: boolean,
    readonly offload: boolean,
    private readonly log: Logger | undefined,
  ) {
    this.#libc = libc;
    this.#errno = errno;
  }

  read(buf: Uint8Array, offset: number, max: number): number {
    for (;;) {
      const n = this.#libc.read(this.fd, ptr(buf, offset), max);
      if (n >= 0) return n;
      const e = this.#errno();
      if (e === EINTR) continue;
      return e === EAGAIN ? 0 : -e;
    }
  }

  write(buf: Uint8Array, offset: number, length: number): number {
    for (;;) {
      const n = this.#libc.write(this.fd, ptr(buf, offset), length);
      if (n >= 0) return n;
      const e = this.#errno();
      if (e !== EINTR) return -e;
    }
  }

  writeWithHead(head: Uint8Array, buf: Uint8Array, offset: number, length: number): number {
    return this.writeSplit(head, 0, head.length, buf, offset, length);
  }

  writeSplit(a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): number {
    const iov = this.#iov;
    setPointer(iov, 0, ptr(a, aOff));
    iov[2] = aLen;
    iov[3] = 0;
    setPointer(iov, 4, ptr(b, bOff));
    iov[6] = bLen;
    iov[7] = 0;
    for (;;) {
      const n = this.#libc.writev(this.fd, this.#iovPtr, 2);
      if (n >= 0) return n;
      const e = this.#errno();
      if (e !== EINTR) return -e;
    }
  }

  watch(onReadable: () => number): void {
    if (this.#watcher !== undefined || this.#closed !== undefined) throw new HostError(`TUN ${this.name} is already watched or closed`);
    this.#onReadable = onReadable;
    const stopFd = this.#libc.eventfd(0, O_NONBLOCK | O_CLOEXEC);
    if (stopFd < 0) throw new HostError(`eventfd failed: errno ${this.#errno()}`);
    this.#stopFd = stopFd;
    const sab = new SharedArrayBuffer(CTRL_WORDS * 4);
    this.#ctrl = new Int32Array(sab);
    Atomics.store(this.#ctrl, STATE, ARMED);
    const w = new Worker(new URL("./tun-watch-worker.ts", import.meta.url).href);
    w.onmessage = (ev: MessageEvent<{ fatal?: string; stopped?: boolean }>) => {
      if (ev.data.fatal) this.log?.error("TUN watcher failed; no more packets are read", { device: this.name, error: ev.data.fatal });
    };
    w.unref();
    this.#watcher = w;
    w.postMessage({ fd: this.fd, stopFd, sab } satisfies WatchInit);
    this.#await();
  }

  /** One wait per wake-up (a promise per batch of packets, never per packet). */
  #await(): void {
    const ctrl = this.#ctrl!;
    const r = Atomics.waitAsync(ctrl, STATE, ARMED);
    if (r.async) r.value.then(this.#signalled);
    else queueMicrotask(this.#signalled);
  }

  readonly #signalled = (): void => {
    const ctrl = this.#ctrl;
    if (ctrl === undefined || this.#closed !== undefined) return;
    if (Atomics.load(ctrl, STATE) !== SIGNALLED) return this.#await(); // spurious
    this.#pass();
  };

  /**
   * One read pass while the watcher sleeps (STATE stays SIGNALLED). Under load packets arrive
   * while the last batch goes out: the next pass comes from the event loop, after the sockets had
   * their turn, instead of a round trip through the watcher thread (two futex wake-ups and a
   * poll per batch, and a thread that must get a CPU first). A pass that finds nothing re-arms it.
   */
  readonly #pass = (): void => {
    const ctrl = this.#ctrl;
    if (ctrl === undefined || this.#closed !== undefined) return;
    let n = 0;
    try {
      n = this.#onReadable!();
    } catch (err) {
      this.log?.error("TUN reader threw", { device: this.name, error: err as Error });
    }
    if (n > 0) {
      setImmediate(this.#pass);
      return;
    }
    Atomics.store(ctrl, STATE, ARMED);
    Atomics.notify(ctrl, STATE);
    this.#await();
  };

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    const w = this.#watcher;
    if (w !== undefined) {
      const stopped = new Promise<void>((resolve) => {
        w.addEventListener("message", (ev: MessageEvent<{ stopped?: boolean; fatal?: string }>) => (ev.data.stopped || ev.data.fatal ? resolve() : undefined));
        w.addEventListener("close", () => resolve());
      });
      Atomics.store(this.#ctrl!, STOP, 1);
      Atomics.notify(this.#ctrl!, STATE);
      this.#libc.write(this.#stopFd, ptr(new BigUint64Array([1n])), 8);
      await Promise.race([stopped, Bun.sleep(1000)]);
      w.terminate();
      this.#libc.close(this.#stopFd);
    }
    this.#libc.close(this.fd);
  }
}

/** Stores a pointer (a number below 2^53) as the two u32 halves of a 64-bit field. */
function setPointer(words: Uint32Array, at: number, p: number): void {
  words[at] = p % 0x1_0000_0000;
  words[at + 1] = Math.floor(p / 0x1_0000_0000);
}
