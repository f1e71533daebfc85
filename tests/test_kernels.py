"""The other-kernels runner without booting anything: spec parsing, config checks, exit codes, the virtiofsd
flag translation, Debian package selection and the command the guest runs."""

from __future__ import annotations

import gzip
import lzma
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernels import config as kconfig
from kernels import debian, debversion, errors, guest, virtiofsd_shim
from kernels.__main__ import main
from kernels.run import UsageError, pytest_command
from kernels.spec import Kernel, build_layout, find_modules, image_release, parse_spec

GOOD_CONFIG = """\
CONFIG_NET_NS=y
CONFIG_VETH=m
CONFIG_NF_TABLES=m
CONFIG_NF_TABLES_INET=y
CONFIG_INET_DIAG=m
CONFIG_INET_TCP_DIAG=m
CONFIG_PACKET=y
CONFIG_IPV6=y
CONFIG_VIRTIO_FS=m
# CONFIG_9P_FS is not set
CONFIG_LOCALVERSION="-test"
"""


def fake_bzimage(release: str = "6.1.0-57-cloud-amd64", payload: bytes = b"", setup_sects: int = 4) -> bytes:
    """A minimal x86 boot image: setup header with the version string and a payload where the header says."""
    image = bytearray((setup_sects + 1) * 512)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, 0x20F)  # boot protocol 2.15
    version = f"{release} (builder@host) #1 SMP Debian".encode() + b"\0"
    struct.pack_into("<H", image, 0x20E, 0x400 - 0x200)
    image[0x400:0x400 + len(version)] = version
    struct.pack_into("<II", image, 0x248, 0, len(payload))
    return bytes(image) + payload


def vmlinux_with_ikconfig(text: str) -> bytes:
    return b"\x7fELF...code..." + b"IKCFG_ST" + gzip.compress(text.encode()) + b"IKCFG_ED" + b"...more"


# --- spec ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "kind", "series"), [
    ("host", "host", None), ("debian:6.1", "debian", "6.1"), ("debian:6.12", "debian", "6.12"),
])
def test_parse_named_specs(text, kind, series):
    spec = parse_spec(text)
    assert (spec.kind, spec.series) == (kind, series)


@pytest.mark.parametrize(("text", "words"), [
    ("", "empty"), ("debian", "<major>.<minor>"), ("debian:", "<major>.<minor>"), ("debian:six", "<major>.<minor>"),
    ("debian:6", "<major>.<minor>"), ("ubuntu:6.1", "unknown kind 'ubuntu'"),
    ("/no/such/vmlinuz", "no such file"), ("/no/such/vmlinuz:/lib", "does not exist"),
])
def test_bad_specs_are_one_line_with_code_10(text, words):
    with pytest.raises(errors.BadSpec) as exc:
        parse_spec(text)
    assert words in str(exc.value) and "\n" not in str(exc.value)
    assert exc.value.code == errors.BAD_SPEC == 10


def test_image_path_and_modules(tmp_path):
    image = tmp_path / "vmlinuz"
    image.write_bytes(fake_bzimage())
    mods = tmp_path / "mods"
    (mods / "6.1.0-57-cloud-amd64" / "kernel").mkdir(parents=True)
    assert parse_spec(str(image)).kind == "image"
    spec = parse_spec(f"{image}:{mods}")
    assert (spec.kind, spec.path, spec.modules) == ("image", image, mods)
    assert image_release(image) == "6.1.0-57-cloud-amd64"
    assert find_modules(image, "6.1.0-57-cloud-amd64", mods) == mods / "6.1.0-57-cloud-amd64"
    with pytest.raises(errors.BadSpec, match=r"no modules for 9\.9"):
        find_modules(image, "9.9", mods)


def test_modules_found_beside_an_unpacked_package(tmp_path):
    (tmp_path / "boot").mkdir()
    image = tmp_path / "boot" / "vmlinuz-6.12.1"
    image.write_bytes(fake_bzimage("6.12.1"))
    (tmp_path / "lib" / "modules" / "6.12.1").mkdir(parents=True)
    assert find_modules(image, "6.12.1", None) == tmp_path / "lib" / "modules" / "6.12.1"
    assert find_modules(image, "6.12.2", None) is None


def test_build_tree_and_non_tree_directory(tmp_path):
    (tmp_path / "arch/x86/boot").mkdir(parents=True)
    assert "not a built kernel tree" in _bad(str(tmp_path))
    (tmp_path / "arch/x86/boot/bzImage").write_bytes(fake_bzimage("6.13.0-rc1"))
    assert parse_spec(str(tmp_path)).kind == "tree"


def _bad(text: str) -> str:
    with pytest.raises(errors.BadSpec) as exc:
        parse_spec(text)
    return str(exc.value)


@pytest.mark.parametrize(("content", "words"), [
    (b"root:x:0:0:root:/root:/bin/bash\n", "not an x86 kernel image"),
    (b"\x7fELF\x02\x01\x01" + bytes(600), "ELF vmlinux"),
    (b"", "not an x86 kernel image"),
])
def test_files_that_are_not_kernels(tmp_path, content, words):
    path = tmp_path / "thing"
    path.write_bytes(content)
    with pytest.raises(errors.BadSpec, match=words):
        image_release(path)


def test_layout_links_image_and_modules_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCKCONF_CACHE", str(tmp_path / "cache"))
    image = tmp_path / "bzImage"
    image.write_bytes(fake_bzimage("6.6.6"))
    mods = tmp_path / "lib/modules/6.6.6"
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text("")
    boot, linked = build_layout(image, "6.6.6", mods)
    assert boot.name == "vmlinuz-6.6.6" and boot.resolve() == image
    assert linked is not None and linked.name == "6.6.6" and linked.resolve() == mods
    assert str(boot).startswith(str(tmp_path / "cache"))
    assert build_layout(image, "6.6.6", mods) == (boot, linked)  # cached


# --- config ---------------------------------------------------------------------------------------------------

def test_config_parse():
    cfg = kconfig.parse(GOOD_CONFIG)
    assert cfg["CONFIG_VETH"] == "m" and cfg["CONFIG_9P_FS"] == "n" and cfg["CONFIG_LOCALVERSION"] == "-test"
    assert kconfig.missing(cfg) == []
    kconfig.check(cfg, "k", has_modules=True)


@pytest.mark.parametrize("option", ["CONFIG_NET_NS", "CONFIG_VETH", "CONFIG_NF_TABLES", "CONFIG_INET_DIAG",
                                    "CONFIG_INET_TCP_DIAG", "CONFIG_PACKET", "CONFIG_IPV6"])
def test_missing_option_is_named(option):
    cfg = kconfig.parse(GOOD_CONFIG.replace(f"{option}=", f"# {option}_WAS="))
    with pytest.raises(errors.MissingOption) as exc:
        kconfig.check(cfg, "debian:6.1", has_modules=True)
    assert option in str(exc.value) and exc.value.code == errors.MISSING_OPTION == 12


def test_alternatives_inet_and_host_filesystem():
    cfg = kconfig.parse(GOOD_CONFIG)
    del cfg["CONFIG_NF_TABLES_INET"]
    with pytest.raises(errors.MissingOption, match="CONFIG_NF_TABLES_INET or CONFIG_NFT_INET"):
        kconfig.check(cfg, "k", True)
    cfg["CONFIG_NFT_INET"] = "y"
    kconfig.check(cfg, "k", True)
    cfg["CONFIG_VIRTIO_FS"] = "n"
    cfg["CONFIG_9P_FS"] = "y"
    with pytest.raises(errors.MissingOption, match="CONFIG_9P_FS and CONFIG_NET_9P_VIRTIO"):
        kconfig.check(cfg, "k", True)
    cfg["CONFIG_NET_9P_VIRTIO"] = "m"
    kconfig.check(cfg, "k", True)


def test_needed_module_without_modules_is_a_bad_spec():
    with pytest.raises(errors.BadSpec, match=r"CONFIG_VETH.*module"):
        kconfig.check(kconfig.parse(GOOD_CONFIG), "k", has_modules=False)
    builtin = GOOD_CONFIG.replace("=m", "=y")
    kconfig.check(kconfig.parse(builtin), "k", has_modules=False)


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress])
def test_ikconfig_from_a_compressed_bzimage(tmp_path, compress):
    image = tmp_path / "bzImage"
    image.write_bytes(fake_bzimage("6.9.0", compress(vmlinux_with_ikconfig(GOOD_CONFIG))))
    text = kconfig.from_image(image)
    assert text == GOOD_CONFIG
    cfg, where = kconfig.read_config(None, image, None)
    assert "embedded IKCONFIG" in where and cfg["CONFIG_VETH"] == "m"


def test_no_config_anywhere_is_code_12(tmp_path):
    image = tmp_path / "bzImage"
    image.write_bytes(fake_bzimage("6.9.0", gzip.compress(b"no config in here")))
    with pytest.raises(errors.MissingOption, match="cannot read this kernel's config"):
        kconfig.read_config(None, image, None)


def test_config_file_wins(tmp_path):
    path = tmp_path / "config-6.1"
    path.write_text(GOOD_CONFIG)
    cfg, where = kconfig.read_config(path, None, None)
    assert where == str(path) and cfg["CONFIG_PACKET"] == "y"


# --- exit codes ---------------------------------------------------------------------------------------------

def test_exit_codes_are_distinct_and_documented():
    classes = [errors.BadSpec, errors.NotShipped, errors.MissingOption, errors.NoBoot, errors.GuestDied,
               errors.HostTools]
    codes = [c.code for c in classes]
    assert codes == [10, 11, 12, 13, 14, 15]
    assert set(codes) == set(errors.CODES)
    assert all(c > 5 for c in codes)  # never one of pytest's own


def test_cli_codes_and_usage(capsys):
    assert main(["codes"]) == 0
    assert "13  guest did not boot" in capsys.readouterr().out
    assert main(["check", "--kernel", "ubuntu:6.1"]) == 10
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 4


# --- virtiofsd shim -----------------------------------------------------------------------------------------

VNG_ARGS = ["--syslog", "--no-announce-submounts", "--readonly", "--socket-path", "/tmp/virtmeabc",
            "--shared-dir", "/", "--sandbox", "none", "--cache", "always"]


def test_shim_translates_vngs_flags_for_the_c_daemon():
    c_args, flags = virtiofsd_shim.translate(VNG_ARGS, "/cache/bin/ro-view")
    assert c_args == ["--socket-path=/tmp/virtmeabc", "-o", "source=/cache/bin/ro-view", "-o", "cache=always",
                      "-o", "sandbox=chroot"]
    assert flags["--readonly"] is True and flags["--shared-dir"] == "/"


def test_shim_read_write_export_and_option_spellings():
    c_args, _ = virtiofsd_shim.translate(["--socket-path=/s", "--shared-dir=/run/d", "--cache", "never",
                                          "--posix-acl", "--thread-pool-size", "4", "--log-level", "debug"])
    assert c_args == ["--socket-path=/s", "-o", "source=/run/d", "-o", "cache=none", "-o", "sandbox=chroot",
                      "-o", "xattr", "-o", "posix_acl", "--thread-pool-size=4", "-o", "log_level=debug"]
    assert "--syslog" not in virtiofsd_shim.translate(VNG_ARGS)[0]


@pytest.mark.parametrize("argv", [["--socket-path", "/s"], ["--socket-path", "/s", "--shared-dir", "/", "--bogus"],
                                  ["--socket-path", "/s", "--shared-dir", "/", "--cache", "sometimes"],
                                  ["--shared-dir"]])
def test_shim_refuses_what_it_cannot_translate(argv):
    with pytest.raises(virtiofsd_shim.ShimUsage):
        virtiofsd_shim.translate(argv)


def test_shim_advertises_readonly_so_vng_passes_it(capsys):
    assert virtiofsd_shim.main(["--help"]) == 0
    assert "--readonly" in capsys.readouterr().out  # vng's _supports_readonly() greps --help for it
    assert virtiofsd_shim.main(["--frobnicate"]) == 2


# --- Debian packages ------------------------------------------------------------------------------------------

def test_debian_version_order():
    assert debversion.compare("6.1.192-3", "6.1.192-2") == 1
    assert debversion.compare("6.12.117-1~deb12u1", "6.12.115-1~deb12u1") == 1
    assert debversion.compare("6.12.117-1~deb12u1", "6.12.117-1") == -1
    assert debversion.compare("1.0~rc1", "1.0") == -1
    assert debversion.compare("1:0.1", "2.0") == 1
    assert debversion.compare("6.1.10-1", "6.1.9-1") == 1
    assert debversion.compare("1.0", "1.0") == 0


SEARCH = """\
linux-image-6.1.0-56-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-57-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-57-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.12.115+deb12-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud
linux-image-6.12.117+deb12-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud
"""
MADISON = """\
linux-image-6.1.0-56-cloud-amd64-unsigned |  6.1.192-2 | http://deb/debian-security bookworm-security/main amd64
linux-image-6.1.0-57-cloud-amd64-unsigned |  6.1.192-3 | http://deb/debian-security bookworm-security/main amd64
linux-image-6.12.115+deb12-cloud-amd64-unsigned | 6.12.115-1~deb12u1 | http://deb bookworm-security/main amd64
linux-image-6.12.117+deb12-cloud-amd64-unsigned | 6.12.117-1~deb12u1 | http://deb bookworm-security/main amd64
"""


def test_debian_newest_of_a_series():
    assert len(debian.parse_search(SEARCH)) == 4  # the non-cloud image is not ours
    packages = debian.parse_madison(MADISON)
    assert debian.newest(packages, "6.1") == debian.Package("linux-image-6.1.0-57-cloud-amd64-unsigned", "6.1.192-3")
    assert debian.newest(packages, "6.12").version == "6.12.117-1~deb12u1"
    assert debian.newest(packages, "5.10") is None
    assert {p.series for p in packages} == {"6.1", "6.12"}


# --- the guest's command ----------------------------------------------------------------------------------------

def test_pytest_command_in_the_guest(tmp_path):
    cmd = pytest_command(["conformance/test_close.py", "-k", "ipv4 and close"], tmp_path)
    assert cmd.startswith(f"{sys.executable} -m pytest conformance/test_close.py -k 'ipv4 and close'")
    assert f"-p no:cacheprovider --results-dir {tmp_path} --label \"$(uname -r)\"" in cmd
    assert "--label \"$(uname -r)\"" not in pytest_command(["--label", "mine"], tmp_path)
    with pytest.raises(UsageError):
        pytest_command(["--results-dir", "/x"], tmp_path)


def test_the_repository_is_compiled_on_the_host_before_boot(tmp_path):
    """The guest never writes .pyc files (read-only root): the host compiles every package it imports, and names
    what it could not compile."""
    import importlib.util

    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "lab.py").write_text("X = 1\n")
    (tmp_path / "conftest.py").write_text("Y = 2\n")
    (tmp_path / "netns").mkdir()
    (tmp_path / "netns" / "broken.py").write_text("def (:\n")
    assert guest.precompile(tmp_path) == ["netns"]
    for source in (tmp_path / "fixtures" / "lab.py", tmp_path / "conftest.py"):
        assert Path(importlib.util.cache_from_source(str(source))).is_file()
    assert {"conformance", "fixtures", "netns", "reports", "conftest.py"} <= set(guest.PACKAGES)
    assert all((guest.REPO / name).exists() for name in guest.PACKAGES)


def test_guest_script_environment(tmp_path):
    script = guest.guest_script("echo hi", tmp_path, "tcg")
    assert guest.UP in script and guest.RC in script and "echo hi" in script
    assert f"export HOME={tmp_path}/guest/home" in script
    assert "export SOCKCONF_EMULATED=tcg" in script and "export SOCKCONF_GUEST_ACCEL=tcg" in script
    assert f"export PATH={Path(sys.executable).parent}:" in script
    assert "SOCKCONF_EMULATED" not in guest.guest_script("true", tmp_path, "kvm")
    assert guest.RO_FAIL in script and f"touch {guest.ROOT_PROBE}" in script  # root must be read-only


@pytest.mark.root
def test_guest_warms_up_nft_before_the_command_in_a_throwaway_namespace(tmp_path):
    """The warm-up comes before the command, and its rule set is one nft accepts (its failure would be silent in
    the guest): run here without the `|| true`, in a namespace of its own, leaving the host's rule set as it was."""
    script = guest.guest_script("echo hi", tmp_path, "tcg")
    assert script.index(guest.NFT_WARM_UP) < script.index("echo hi")
    assert "| unshare --net nft -f -" in guest.NFT_WARM_UP
    strict = guest.NFT_WARM_UP.replace(" >/dev/null 2>&1 || true", "")
    before = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout
    proc = subprocess.run(["sh", "-c", strict], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout == before


def test_guest_holds_packet_timestamps_on_for_the_whole_command(tmp_path):
    """The holder starts (in the background) before the command: the static key behind packet timestamps stays
    enabled, not live-patched per case. Its Python is valid (run here with the sleep cut to nothing)."""
    script = guest.guest_script("echo hi", tmp_path, "tcg")
    assert script.index(guest.HOLD_TIMESTAMPS) < script.index("echo hi")
    assert guest.HOLD_TIMESTAMPS.endswith("&")
    code = guest.HOLD_TIMESTAMPS.split("'")[1].replace("10 ** 9", "0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.root
def test_guest_holds_a_chain_on_every_inet_hook_for_the_whole_command(tmp_path):
    """The netfilter holder starts (in the background) before the command, in a namespace of its own: its rule set is
    one nft accepts, with a base chain on each inet hook (run here with the sleep replaced by a listing), and the
    host's rule set stays as it was."""
    script = guest.guest_script("echo hi", tmp_path, "tcg")
    assert script.index(guest.HOLD_NF_HOOKS) < script.index("echo hi")
    assert guest.HOLD_NF_HOOKS.startswith("unshare --net ") and guest.HOLD_NF_HOOKS.endswith("&")
    listing = guest.HOLD_NF_HOOKS.replace("exec sleep 1000000000", "nft list ruleset")
    listing = listing.removesuffix(" >/dev/null 2>&1 &")
    before = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout
    proc = subprocess.run(["sh", "-c", listing], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert [f"type filter hook {hook}" in proc.stdout for hook in guest.NF_HOOKS] == [True] * len(guest.NF_HOOKS)
    assert subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout == before


def test_vng_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCKCONF_CACHE", str(tmp_path / "cache"))
    kernel = Kernel("debian:6.1", "debian", "6.1.0-57", image=tmp_path / "boot/vmlinuz-6.1.0-57")
    opts = guest.Options(nice=19)
    argv = guest.vng_argv("/bin/vng", kernel, tmp_path / "run", tmp_path / "run/guest/cmd.sh", "tcg", opts)
    assert argv[:5] == ["nice", "-n", "19", "ionice", "-c3"]
    assert "--disable-kvm" in argv and argv[argv.index("--rwdir") + 1] == str(tmp_path / "run")
    assert "--rodir" not in argv  # the cache is not under /var/cache here
    assert any(a.startswith("modprobe.blacklist=kvm,") for a in argv)
    assert argv[-2:] == ["--exec", f"sh {tmp_path}/run/guest/cmd.sh"]
    kvm = guest.vng_argv("/bin/vng", kernel, tmp_path, tmp_path / "c.sh", "kvm", guest.Options(nice=0))
    assert "--disable-kvm" not in kvm and kvm[0] == "/bin/vng"


def test_a_sigterm_interrupts_a_guest_run_like_ctrl_c_and_the_handler_is_restored_after() -> None:
    """`pytest --kernel` terminated (CI cancelling the job) must end the guest: SIGTERM becomes KeyboardInterrupt,
    which guest.run() answers by killing the guest's session (left running before: vng, qemu, virtiofsd)."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), guest._sigterm_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs at the next bytecode: never reached
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_interrupted_guest_run_keeps_its_partial_results_and_exits_as_pytest_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from kernels import run as krun

    class Prepared:
        kind, release = "debian", "6.1.0-test"

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    rebuilt: list[Path] = []
    monkeypatch.setattr(krun, "prepare", lambda spec, log=print: Prepared())
    monkeypatch.setattr(krun.guest, "run", interrupted)
    monkeypatch.setattr(krun, "rebuild_partial", lambda run_dir, log=print: rebuilt.append(run_dir))
    assert krun.run("debian:6.1", ["conformance"], tmp_path / "run", guest.Options()) == krun.INTERRUPTED == 2
    assert rebuilt == [(tmp_path / "run").resolve()]
    assert "kernels: interrupted (SIGTERM): the guest was stopped" in capsys.readouterr().err
