"""Lossless raw capture on one interface of a namespace, with kernel timestamps and direction.

A raw AF_PACKET socket is opened and bound *before* any traffic is made, so nothing can be missed the way
an asynchronously started sniffer misses the first SYN. Its receive buffer is forced to 32 MiB and a
background thread drains it into memory as raw bytes; dissection (scapy) happens after the fact, never on
the hot path. Timestamps are SO_TIMESTAMPNS (CLOCK_REALTIME, compare with time.time()).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from netns.namespace import Namespace

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
PACKET_HOST = 0
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_STATISTICS = 6
RCVBUF_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Frame:
    ts: float  # kernel timestamp, epoch seconds
    outgoing: bool  # sent by the namespace the capture lives in
    data: bytes


class Capture:
    """Captures every frame on `ifname` inside `ns` from construction until stop()."""

    def __init__(self, ns: Namespace, ifname: str) -> None:
        self.ns = ns
        self.ifname = ifname
        # protocol 0: the socket hears nothing until bind() names the interface and ETH_P_ALL; created with
        # ETH_P_ALL it would hear every interface at once, and bind() would first unhook it (an RCU grace period,
        # ~15 ms per case)
        self._sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
            self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            with ns.inside():
                self._sock.bind((ifname, ETH_P_ALL))
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise
        self._frames: list[Frame] = []
        self.on_frames: Callable[[], None] | None = None  # called (from any thread) when frames were added
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified when frames are added (wait_beyond())
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # stop() wakes the drain thread at once
        self.kernel_drops = 0
        self._thread = threading.Thread(target=self._loop, name=f"capture-{ns.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                select.select([self._sock, self._wake_r], [], [], 0.5)
            self.drain()

    def drain(self) -> None:
        """Move everything queued in the kernel into memory (safe to call from any thread); then call on_frames
        if any came."""
        with self._lock:
            before = len(self._frames)
            while True:
                try:
                    data, anc, _flags, addr = self._sock.recvmsg(65536, 64)
                except (BlockingIOError, OSError, ValueError):
                    self._arrived.notify_all()
                    break
                ts = time.time()
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", payload[:16])
                        ts = sec + nsec / 1e9
                self._frames.append(Frame(ts, addr[2] == PACKET_OUTGOING, data))
            added = len(self._frames) - before
        if added and self.on_frames is not None:
            self.on_frames()

    def wait_beyond(self, count: int, timeout: float) -> None:
        """Return once more than `count` frames are held, or after `timeout` s (a waiting expectation sleeps until
        the drain thread adds frames instead of polling)."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self._frames) > count, max(0.0, timeout))

    def frames(self) -> list[Frame]:
        self.drain()
        with self._lock:
            return list(self._frames)

    def stop(self) -> list[Frame]:
        if not self._stop.is_set():
            self._stop.set()
            os.write(self._wake_w, b"x")
            self._thread.join()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self.drain()
            with contextlib.suppress(OSError):
                stats = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
                self.kernel_drops = struct.unpack("II", stats)[1]
            self._sock.close()
        with self._lock:
            return list(self._frames)
