"""Read a kernel's config before booting it and require what the suite needs.

Where the config comes from, first found wins: the file the spec resolved (Debian: boot/config-<release> in the
package; build tree: .config; an image: config-<release> or .config beside it), else the config embedded in the
image (CONFIG_IKCONFIG: a gzip stream between the IKCFG_ST and IKCFG_ED markers, found in the bzImage as is or
in its decompressed payload, as scripts/extract-ikconfig does), else configs.ko among its modules.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from kernels.errors import BadSpec, MissingOption

IKCFG_ST, IKCFG_ED = b"IKCFG_ST", b"IKCFG_ED"


@dataclass(frozen=True)
class Need:
    """One requirement: any of `options` set to y or m (an option may be "A+B": both)."""

    options: tuple[str, ...]
    why: str

    def met(self, config: dict[str, str]) -> bool:
        return any(all(config.get(o) in ("y", "m") for o in alt.split("+")) for alt in self.options)

    def modular(self, config: dict[str, str]) -> list[str]:
        """The options of the first satisfied alternative that are modules (=m)."""
        for alt in self.options:
            parts = alt.split("+")
            if all(config.get(o) in ("y", "m") for o in parts):
                return [o for o in parts if config.get(o) == "m"]
        return []

    def name(self) -> str:
        return " or ".join(self.options).replace("+", " and ")


NEEDS = (
    Need(("CONFIG_NET_NS",), "every case runs in its own network namespaces"),
    Need(("CONFIG_VETH",), "the two namespaces are joined by a veth pair"),
    Need(("CONFIG_NF_TABLES",), "faults are injected with nftables"),
    Need(("CONFIG_NF_TABLES_INET", "CONFIG_NFT_INET"), "the fault rules live in an inet-family table"),
    Need(("CONFIG_INET_DIAG",), "socket states and timers are read over sock_diag"),
    Need(("CONFIG_INET_TCP_DIAG",), "TCP sockets over sock_diag"),
    Need(("CONFIG_PACKET",), "the wire is captured with a packet socket"),
    Need(("CONFIG_IPV6",), "every case also runs over IPv6"),
    Need(("CONFIG_VIRTIO_FS", "CONFIG_9P_FS+CONFIG_NET_9P_VIRTIO"), "the guest mounts the host's filesystem"),
)


def parse(text: str) -> dict[str, str]:
    """A .config -> {CONFIG_X: value}; `# CONFIG_X is not set` -> "n"."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip('"')
            continue
        m = re.match(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$", line)
        if m:
            out[m.group(1)] = "n"
    return out


def missing(config: dict[str, str]) -> list[Need]:
    return [need for need in NEEDS if not need.met(config)]


def check(config: dict[str, str], where: str, has_modules: bool) -> None:
    """Raise MissingOption naming every missing option (one line); BadSpec if a needed option is a module but the
    kernel comes without its modules."""
    gaps = missing(config)
    if gaps:
        names = "; ".join(f"{n.name()} ({n.why})" for n in gaps)
        raise MissingOption(f"{where}: kernel lacks {names}")
    modular = [o for need in NEEDS for o in need.modular(config)]
    if modular and not has_modules:
        raise BadSpec(f"{where}: {', '.join(modular)} {'is a module' if len(modular) == 1 else 'are modules'} "
                      "but no modules were found for this kernel: give PATH:MODULES")


# --- finding the config -----------------------------------------------------------------------------------------

def ikconfig(blob: bytes) -> str | None:
    """The config embedded between IKCFG_ST and IKCFG_ED (a gzip stream), or None."""
    start = blob.find(IKCFG_ST)
    while start >= 0:
        end = blob.find(IKCFG_ED, start)
        chunk = blob[start + len(IKCFG_ST): end if end > 0 else None]
        try:
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(chunk).decode("utf-8", "replace")
        except zlib.error:
            start = blob.find(IKCFG_ST, start + 1)
    return None


_MAGICS = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x02\x21\x4c\x18", "lz4"),
)


def _decompress(kind: str, data: bytes) -> bytes | None:
    try:
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        if kind == "xz":
            return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data)
        if kind == "lzma":
            return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(data)
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError):
        return None
    tool = {"zstd": ["zstd", "-dcq"], "lz4": ["lz4", "-dcq"]}[kind]
    if shutil.which(tool[0]) is None:
        return None
    proc = subprocess.run(tool, input=data, capture_output=True, check=False)
    return proc.stdout or None  # trailing garbage makes these exit non-zero after writing the kernel


def payload(image: bytes) -> bytes | None:
    """The compressed kernel inside a bzImage (setup header: setup_sects, payload_offset/length), or None."""
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        return None
    setup_sects = image[0x1F1] or 4
    (version,) = struct.unpack_from("<H", image, 0x206)
    if version < 0x208:
        return None
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return image[start:start + length]


def from_image(path: Path) -> str | None:
    """extract-ikconfig: the embedded config of a kernel image, or None if it has none."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    found = ikconfig(blob)
    if found is not None:
        return found
    inner = payload(blob)
    candidates = []
    if inner:
        candidates = [kind for magic, kind in _MAGICS if inner.startswith(magic)]
    for kind in candidates:
        data = _decompress(kind, inner)  # type: ignore[arg-type]
        if data and (found := ikconfig(data)) is not None:
            return found
    for magic, kind in _MAGICS:  # no usable header: look for compressed streams anywhere, as extract-ikconfig
        pos = blob.find(magic)
        if pos >= 0 and kind not in candidates:
            data = _decompress(kind, blob[pos:])
            if data and (found := ikconfig(data)) is not None:
                return found
    return None


def from_modules(modules: Path | None) -> str | None:
    if modules is None:
        return None
    for ko in modules.glob("kernel/kernel/configs.ko*"):
        data = ko.read_bytes()
        if ko.suffix == ".xz":
            data = _decompress("xz", data) or b""
        elif ko.suffix == ".zst":
            data = _decompress("zstd", data) or b""
        elif ko.suffix == ".gz":
            data = gzip.decompress(data)
        found = ikconfig(data)
        if found is not None:
            return found
    return None


def read_config(config_path: Path | None, image: Path | None, modules: Path | None) -> tuple[dict[str, str], str]:
    """The kernel's config and where it came from; MissingOption if none can be found (nothing can be checked)."""
    if config_path is not None and config_path.is_file():
        return parse(config_path.read_text(errors="replace")), str(config_path)
    if image is not None:
        text = from_image(image)
        if text is not None:
            return parse(text), f"{image} (embedded IKCONFIG)"
    text = from_modules(modules)
    if text is not None:
        return parse(text), "configs.ko"
    raise MissingOption(f"{image}: cannot read this kernel's config (no config file beside it, no embedded "
                        "CONFIG_IKCONFIG): put its .config or config-<release> beside the image")
