"""`--kernel SPEC`: what to boot.

    host                      this machine's kernel: no guest, pytest runs here
    debian:<series>           the newest Debian 12 linux-image-<series>…-cloud-amd64-unsigned (debian:6.1, debian:6.12)
    PATH                      a vmlinuz/bzImage; its modules are looked for beside it (lib/modules/<release> in its
                              directory or the one above, as in an unpacked package), else it boots without modules
    PATH:MODULES              a vmlinuz/bzImage and its modules: lib/modules/<release>, or a directory holding it
    TREE                      a kernel build tree: TREE/arch/x86/boot/bzImage, TREE/.config, the built modules
                              (modules.order); modules are linked and depmod-ed in the cache, never in the tree

parse_spec() only classifies the text (and checks paths exist); resolve() fetches, unpacks and builds the layout
vng boots (boot/vmlinuz-<release> + lib/modules/<release>).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kernels.cache import cache_dir, locked
from kernels.errors import BadSpec, HostTools

KINDS = ("host", "debian", "image", "tree")
TREE_IMAGE = Path("arch/x86/boot/bzImage")
SERIES_RE = re.compile(r"^\d+\.\d+$")
USAGE = ("expected host, debian:<series> (e.g. debian:6.1, debian:6.12), a vmlinuz/bzImage path, "
         "PATH:MODULES, or a kernel build tree")


@dataclass(frozen=True)
class Spec:
    text: str
    kind: str
    series: str | None = None
    path: Path | None = None
    modules: Path | None = None


@dataclass
class Kernel:
    """A resolved kernel: what vng boots and what the config check reads."""

    spec: str
    kind: str
    release: str
    image: Path | None = None  # boot/vmlinuz-<release> of the layout (host: None)
    modules: Path | None = None  # lib/modules/<release> beside it, or None (no modules)
    config: Path | None = None  # a config file, if one is known (else config.py searches the image)
    source_image: Path | None = None  # the image as given (before the layout's symlink)
    meta: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" ({self.meta['package']} {self.meta['version']})" if "package" in self.meta else ""
        return f"{self.spec}: {self.release}{where}"


def parse_spec(text: str) -> Spec:
    text = text.strip()
    if not text:
        raise BadSpec(f"--kernel: empty; {USAGE}")
    if text == "host":
        return Spec(text, "host")
    if text.startswith("debian:") or text == "debian":
        series = text.partition(":")[2]
        if not SERIES_RE.match(series):
            raise BadSpec(f"--kernel {text}: the Debian series is <major>.<minor>, e.g. debian:6.1 or debian:6.12")
        return Spec(text, "debian", series=series)
    if re.match(r"^[a-z]+:", text) and not Path(text).exists() and not Path(text.split(":")[0]).exists():
        raise BadSpec(f"--kernel {text}: unknown kind {text.split(':')[0]!r}; {USAGE}")
    path, modules = Path(text), None
    if not path.exists() and ":" in text:
        left, _, right = text.rpartition(":")
        path, modules = Path(left), Path(right)
        if not path.exists():
            raise BadSpec(f"--kernel {text}: {left} does not exist")
        if not modules.is_dir():
            raise BadSpec(f"--kernel {text}: modules directory {right} does not exist")
    if not path.exists():
        raise BadSpec(f"--kernel {text}: no such file or directory; {USAGE}")
    path = path.resolve()
    if path.is_dir():
        if (path / TREE_IMAGE).is_file():
            if modules is not None:
                raise BadSpec(f"--kernel {text}: a build tree brings its own modules; give TREE alone")
            return Spec(text, "tree", path=path)
        raise BadSpec(f"--kernel {text}: a directory but not a built kernel tree (no {TREE_IMAGE}); {USAGE}")
    return Spec(text, "image", path=path, modules=modules.resolve() if modules else None)


# --- kernel images --------------------------------------------------------------------------------------------

def image_release(path: Path) -> str:
    """The release (`uname -r`) of an x86 bzImage, from its setup header (kernel_version at 0x20E), as `file`
    does. Anything else is a BadSpec naming what it is."""
    try:
        with open(path, "rb") as f:
            head = f.read(0x10000)
    except OSError as exc:
        raise BadSpec(f"{path}: cannot read it: {exc.strerror}") from None
    if head[:4] == b"\x7fELF":
        raise BadSpec(f"{path}: an ELF vmlinux, not a bootable image: give arch/x86/boot/bzImage (or the vmlinuz)")
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise BadSpec(f"{path}: not an x86 kernel image (no bzImage setup header)")
    (ptr,) = struct.unpack_from("<H", head, 0x20E)
    start = 0x200 + ptr
    if not ptr or start >= len(head):
        raise BadSpec(f"{path}: bzImage without a version string")
    raw = head[start:start + 256].split(b"\0", 1)[0].decode("ascii", "replace")
    release = raw.split(" ", 1)[0]
    if not release or not re.match(r"^\d+\.\d+", release):
        raise BadSpec(f"{path}: unreadable kernel version {raw!r}")
    return release


def find_modules(image: Path, release: str, given: Path | None) -> Path | None:
    """The lib/modules/<release> directory for this image: the given one (either that directory, or one holding
    lib/modules/<release> or <release>), else beside the image."""
    if given is not None:
        for cand in (given, given / release, given / "lib" / "modules" / release):
            if (cand / "modules.order").exists() or (cand / "kernel").is_dir():
                return cand
        raise BadSpec(f"{given}: no modules for {release} there (looked for modules.order or kernel/ in "
                      f"{given}, {given}/{release}, {given}/lib/modules/{release})")
    for base in (image.parent, image.parent.parent):
        cand = base / "lib" / "modules" / release
        if cand.is_dir():
            return cand
    return None


def _layout_dir(*parts: object) -> Path:
    key = hashlib.sha1(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:12]
    return cache_dir() / "kernels" / "layouts" / key


def _depmod(root: Path, release: str) -> None:
    if shutil.which("depmod") is None:
        raise HostTools("depmod not found (Debian package kmod)")
    proc = subprocess.run(["depmod", "-b", str(root), release], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BadSpec(f"depmod -b {root} {release} failed: {proc.stderr.strip()}")


def _link_tree(src: Path, dst: Path) -> None:
    """dst mirrors src with one symlink per file (cheap; depmod then writes its files into dst only)."""
    for dirpath, _dirs, files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            if not name.startswith("modules.") or name in ("modules.order", "modules.builtin",
                                                          "modules.builtin.modinfo"):
                (dst / rel / name).symlink_to(Path(dirpath) / name)


def build_layout(image: Path, release: str, modules: Path | None, tree: Path | None = None) -> tuple[Path, Path | None]:
    """boot/vmlinuz-<release> (a symlink to the image) and lib/modules/<release> (with modules.dep) in the cache,
    so that vng finds image and modules the same way for every kind of spec. Returns (image, modules)."""
    stamp = image.stat().st_mtime_ns
    root = _layout_dir(image, stamp, modules, tree)
    boot = root / "boot" / f"vmlinuz-{release}"
    mods = root / "lib" / "modules" / release
    done = root / ".done"
    with locked():
        if not done.exists():
            if root.exists():
                shutil.rmtree(root)
            boot.parent.mkdir(parents=True)
            boot.symlink_to(image)
            if tree is not None:
                _tree_modules(tree, mods)
                if mods.exists():
                    _depmod(root, release)
            elif modules is not None:
                if (modules / "modules.dep").exists():
                    mods.parent.mkdir(parents=True)
                    mods.symlink_to(modules)
                else:
                    _link_tree(modules, mods)
                    _depmod(root, release)
            done.write_text("")
    return boot, (mods if mods.exists() else None)


def _tree_modules(tree: Path, mods: Path) -> None:
    """Link a build tree's modules (listed in modules.order) under mods/kernel/, as `make modules_install` would
    place them, without writing into the tree."""
    order = tree / "modules.order"
    if not order.exists():
        return
    lines = []
    for line in order.read_text().split():
        rel = line.removesuffix(".o").removesuffix(".ko") + ".ko"
        built = tree / rel
        if not built.exists():
            continue
        target = mods / "kernel" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(built)
        lines.append(f"kernel/{rel}")
    mods.mkdir(parents=True, exist_ok=True)
    (mods / "modules.order").write_text("".join(f"{x}\n" for x in lines))
    for name in ("modules.builtin", "modules.builtin.modinfo"):
        if (tree / name).exists():
            shutil.copyfile(tree / name, mods / name)


def resolve(spec: Spec) -> Kernel:
    if spec.kind == "host":
        uname = os.uname()
        return Kernel(spec.text, "host", uname.release, meta={"version": uname.version})
    if spec.kind == "debian":
        from kernels import debian

        root = debian.resolve(str(spec.series))
        meta = json.loads((root / debian.META).read_text())
        release = meta["release"]
        return Kernel(spec.text, "debian", release, image=root / "boot" / f"vmlinuz-{release}",
                      modules=root / "lib" / "modules" / release, config=root / "boot" / f"config-{release}",
                      source_image=root / "boot" / f"vmlinuz-{release}", meta=meta)
    assert spec.path is not None
    if spec.kind == "tree":
        image = spec.path / TREE_IMAGE
        release = image_release(image)
        boot, mods = build_layout(image, release, None, tree=spec.path)
        return Kernel(spec.text, "tree", release, image=boot, modules=mods, config=spec.path / ".config",
                      source_image=image)
    release = image_release(spec.path)
    modules = find_modules(spec.path, release, spec.modules)
    boot, mods = build_layout(spec.path, release, modules)
    config = None
    beside = [spec.path.parent / f"config-{release}", spec.path.parent / ".config"]
    if modules is not None:
        beside.append(modules.parent.parent.parent / "boot" / f"config-{release}")
    for cand in beside:
        if cand.is_file():
            config = cand
            break
    return Kernel(spec.text, "image", release, image=boot, modules=mods, config=config, source_image=spec.path)
