"""Debian 12 cloud kernels: find the newest `linux-image-<series>…-cloud-amd64-unsigned`, fetch it with
`apt-get download`, unpack it with `dpkg -x` (never installed), `depmod -b` it, and keep it in the cache.

The package ships boot/vmlinuz-<release>, boot/config-<release> and lib/modules/<release> without modules.dep.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kernels import debversion
from kernels.cache import cache_dir, locked
from kernels.errors import HostTools, NotShipped

FLAVOUR = "cloud-amd64-unsigned"
NAME_RE = re.compile(r"^linux-image-(\d+\.\d+)[.-]\S*-" + re.escape(FLAVOUR) + r"$")
META = "sockconf-kernel.json"


@dataclass(frozen=True)
class Package:
    name: str
    version: str

    @property
    def series(self) -> str:
        m = NAME_RE.match(self.name)
        return m.group(1) if m else ""


def parse_search(text: str) -> list[str]:
    """`apt-cache search --names-only` output -> the cloud-amd64-unsigned image package names."""
    names = []
    for line in text.splitlines():
        name = line.split(" - ", 1)[0].strip()
        if NAME_RE.match(name):
            names.append(name)
    return sorted(set(names))


def parse_madison(text: str) -> list[Package]:
    """`apt-cache madison` output ("pkg | version | source") -> packages (one per name and version)."""
    out = set()
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 2 and NAME_RE.match(parts[0]):
            out.add(Package(parts[0], parts[1]))
    return sorted(out, key=lambda p: (p.name, debversion.key(p.version)))


def newest(packages: list[Package], series: str) -> Package | None:
    """The highest package version of that series (the ABI number in 6.1's names and the upstream version in
    6.12's both grow with the package version; the version decides)."""
    of_series = [p for p in packages if p.series == series]
    return max(of_series, key=lambda p: debversion.key(p.version)) if of_series else None


def _apt(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        raise HostTools(f"{argv[0]} not found: Debian 12's apt is needed to fetch debian:<series> kernels")
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.stdout


def available() -> list[Package]:
    """Every cloud-amd64-unsigned image package apt knows (all versions). Runs `apt-get update` once if apt's
    lists know none (a fresh machine)."""
    pattern = r"^linux-image-[0-9.]+[.-].*-" + FLAVOUR.replace("-", r"\-") + "$"
    names = parse_search(_apt(["apt-cache", "search", "--names-only", pattern]))
    if not names:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        names = parse_search(_apt(["apt-cache", "search", "--names-only", pattern]))
    if not names:
        return []
    return parse_madison(_apt(["apt-cache", "madison", *names]))


def cached(series: str) -> list[Path]:
    """Unpacked kernels of this series already in the cache (newest last)."""
    base = cache_dir() / "kernels" / "debian"
    found = []
    for meta in base.glob(f"*/{META}"):
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if data.get("series") == series:
            found.append((data.get("version", ""), meta.parent))
    found.sort(key=lambda vp: debversion.key(vp[0]))
    return [p for _, p in found]


def resolve(series: str) -> Path:
    """The unpacked root (boot/, lib/modules/) of the newest Debian 12 kernel of `series`, fetched if needed."""
    packages = available()
    pkg = newest(packages, series)
    if pkg is None:
        offline = cached(series)
        if offline and not packages:  # apt knows nothing (no network?): use what the cache has
            return offline[-1]
        shipped = sorted({p.series for p in packages}, key=lambda s: tuple(int(x) for x in s.split(".")))
        raise NotShipped(f"debian:{series}: Debian 12 ships no linux-image-{series}*-{FLAVOUR} "
                         f"(series available: {', '.join(shipped) or 'none: is apt configured?'})")
    return fetch(pkg)


def fetch(pkg: Package) -> Path:
    base = cache_dir() / "kernels" / "debian"
    root = base / f"{pkg.name}_{pkg.version.replace(':', '%3a')}"
    if (root / META).exists():
        return root
    base.mkdir(parents=True, exist_ok=True)
    with locked():
        if (root / META).exists():
            return root
        for tool in ("apt-get", "dpkg", "depmod"):
            if shutil.which(tool) is None:
                raise HostTools(f"{tool} not found (Debian packages apt, dpkg, kmod)")
        with tempfile.TemporaryDirectory(dir=base, prefix=".fetch-") as tmp:
            # -o APT::Sandbox::User=root: the _apt user cannot write into the cache directory.
            proc = subprocess.run(["apt-get", "download", "-o", "APT::Sandbox::User=root", f"{pkg.name}={pkg.version}"],
                                  cwd=tmp, capture_output=True, text=True, check=False)
            debs = list(Path(tmp).glob("*.deb"))
            if proc.returncode != 0 or not debs:
                raise NotShipped(f"apt-get download {pkg.name}={pkg.version} failed: "
                                 f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
            unpacked = Path(tmp) / "root"
            subprocess.run(["dpkg", "-x", str(debs[0]), str(unpacked)], check=True, capture_output=True)
            images = sorted((unpacked / "boot").glob("vmlinuz-*"))
            if len(images) != 1:
                raise NotShipped(f"{pkg.name}: expected one boot/vmlinuz-*, found {len(images)}")
            release = images[0].name.removeprefix("vmlinuz-")
            subprocess.run(["depmod", "-b", str(unpacked), release], check=True, capture_output=True)
            (unpacked / META).write_text(json.dumps(
                {"package": pkg.name, "version": pkg.version, "series": pkg.series, "release": release}, indent=1))
            unpacked.rename(root)
    return root
