"""Every reference the catalogue cites resolves in fixtures/refindex.py (pure: imports modules, no root)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from fixtures.refindex import (
    KERNEL_SYMBOLS,
    KERNEL_TAG,
    POSIX,
    RFC_SECTIONS,
    check_reference,
    parse_reference,
    reference_url,
    rfc_title,
)

CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance"


def _reference_marks(obj: object) -> list[tuple[str, ...]]:
    marks = getattr(obj, "pytestmark", None) or []
    return [tuple(m.args) for m in marks if getattr(m, "name", None) == "reference"]


def _references_in_source(path: Path) -> list[str]:
    """The string arguments of every reference(...) call in a module's source (for one that cannot import)."""
    texts = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "reference":
            values = [*node.args, *(k.value for k in node.keywords if k.arg == "kernel")]
            for value in values:
                items = value.elts if isinstance(value, ast.Tuple | ast.List) else [value]
                texts += [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
    return texts


def catalogue_references() -> tuple[dict[str, list[str]], dict[str, str]]:
    """Reference text -> the tests citing it, read from the `reference` marks of conformance/test_*.py; and
    module -> error for the modules that could not be imported (their references are not read)."""
    found: dict[str, list[str]] = {}
    broken: dict[str, str] = {}
    for path in sorted(CONFORMANCE.glob("test_*.py")):
        try:
            module = importlib.import_module(f"conformance.{path.stem}")
        except Exception as exc:  # reported by test_catalogue_modules_import; read its source instead
            broken[path.name] = f"{type(exc).__name__}: {exc}"
            for text in _references_in_source(path):
                found.setdefault(text, []).append(f"{path.name} (source)")
            continue
        for name, obj in vars(module).items():
            candidates = [(name, obj)]
            if inspect.isclass(obj) and name.startswith("Test"):
                candidates += [(f"{name}.{n}", o) for n, o in vars(obj).items() if n.startswith("test")]
            for qualname, item in candidates:
                if not qualname.split(".")[-1].startswith("test") or not callable(item):
                    continue
                for args in _reference_marks(item):
                    for text in args:
                        found.setdefault(text, []).append(f"{path.name}::{qualname}")
    return found, broken


def test_catalogue_modules_import():
    _, broken = catalogue_references()
    assert not broken, "cannot read the references of:\n" + "\n".join(f"{m}: {e}" for m, e in broken.items())


def test_catalogue_has_references():
    refs, _ = catalogue_references()
    assert len(refs) > 50, "the reference marks were not found: is the repository root on sys.path?"


def test_every_catalogue_reference_resolves():
    refs, _ = catalogue_references()
    failures = []
    for text, users in sorted(refs.items()):
        reason = check_reference(text)
        if reason:
            failures.append(f"{reason}  [{', '.join(users)}]")
    assert not failures, f"{len(failures)} reference(s) do not resolve:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    "text",
    [
        "RFC 9293 §3.4.9",
        "RFC 9293 §3.10.7.9 (no such state)",
        "RFC 6298 §5.5",
        "RFC 4242",
        "net/ipv4/tcp.c tcp_fin_time()",
        "net/core/sock.c sock_error()",
        "net/core/sock.c sk_wait_event()",
        "net/ipv4/inet_connection_sock.c reqsk_queue_remove()",
        "net/ipv4/tcp_minisocks.c tcp_time_wait() inet_twsk_schedule()",
        "net/ipv4/tcp_input.c tcp_rcv_state_process() TCP_CLOSING -> tcp_time_wait()",
        "net/ipv4/tcp_ipv4.c tcp_v4_rcv() do_time_wait",
        "net/ipv4/tcp_input.c tcp_fin() FIN_WAIT3",
        "net/ipv4/tcp_nope.c tcp_fin()",
        "include/net/tcp.h TCP_TIMEWAIT_LENGTH",
        "net/ipv4/tcp.c (only free text)",
        "POSIX close()/SO_LINGERING",
        "see the kernel",
    ],
)
def test_check_reference_rejects(text):
    reason = check_reference(text)
    assert reason is not None, f"{text!r} should not resolve"
    assert "\n" not in reason and text in reason


@pytest.mark.parametrize(
    "text",
    [
        "RFC 9293 §3.10.4",
        "RFC 9293 §3.4.2 (MSL = 2 min)",
        "RFC 9293 §3.10.7.4 (RST in ESTABLISHED: flush the queues, signal connection reset)",
        "RFC 1337",
        "RFC 8985 §7 (TLP)",
        "include/net/tcp.h tcp_fin_time()",
        "include/net/tcp.h tcp_fin_time() (3.5 * RTO floor)",
        "include/net/tcp.h TCP_TIMEWAIT_LEN",
        "include/net/sock.h sock_error()",
        "net/ipv4/tcp.c __tcp_close() FIN_WAIT2 (linger2 < 0)",
        "net/ipv4/tcp.c do_tcp_setsockopt() TCP_LINGER2 (TCP_FIN_TIMEOUT_MAX)",
        "net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT1/LAST_ACK",
        "net/ipv4/tcp_input.c tcp_fin() TCP_FIN_WAIT1",
        "net/ipv4/tcp_timer.c tcp_write_timeout() retransmits_timed_out(icsk_user_timeout)",
        "net/ipv4/tcp_input.c tcp_rcv_state_process() TCP_CLOSING (-> tcp_time_wait())",
        "POSIX close()/SO_LINGER",
        "POSIX _exit() (open descriptors are closed)",
    ],
)
def test_check_reference_accepts(text):
    assert check_reference(text) is None


def test_parse_reference():
    ref = parse_reference("net/ipv4/tcp_input.c tcp_rcv_state_process() FIN_WAIT1 (tmo > TCP_TIMEWAIT_LEN)")
    assert (ref.kind, ref.file, ref.symbols) == ("kernel", "net/ipv4/tcp_input.c", ("tcp_rcv_state_process",))
    assert ref.qualifiers == ("FIN_WAIT1",) and ref.free == "(tmo > TCP_TIMEWAIT_LEN)"
    ref = parse_reference("RFC 9293 §3.10.4 (CLOSE in LISTEN)")
    assert (ref.kind, ref.rfc, ref.section, ref.free) == ("rfc", 9293, "3.10.4", "(CLOSE in LISTEN)")
    assert parse_reference("RFC 1337").section == ""
    ref = parse_reference("POSIX close()/SO_LINGER")
    assert (ref.kind, ref.names) == ("posix", ("close()", "SO_LINGER"))
    assert parse_reference("include/net/tcp.h TCP_TIMEWAIT_LEN").symbols == ("TCP_TIMEWAIT_LEN",)


def test_titles():
    assert rfc_title("RFC 9293 §3.10.4 (free text)") == "CLOSE Call"
    assert rfc_title("RFC 9293 §3.10.7.4") == "Other States"
    assert rfc_title("RFC 2525") == "Known TCP Implementation Problems"
    assert all("" in sections for sections in RFC_SECTIONS.values()), "every RFC needs its title under ''"


def test_reference_url():
    assert reference_url("RFC 9293 §3.10.7.4 (FIN-WAIT-2)") == "https://www.rfc-editor.org/rfc/rfc9293#section-3.10.7.4"
    assert reference_url("RFC 1337") == "https://www.rfc-editor.org/rfc/rfc1337"
    assert reference_url("net/ipv4/tcp.c __tcp_close()") == (
        f"https://elixir.bootlin.com/linux/{KERNEL_TAG}/source/net/ipv4/tcp.c"
    )
    assert KERNEL_TAG == "v6.18", "links are pinned to a tag, never a moving branch"
    assert reference_url("POSIX close()/SO_LINGER") == POSIX["close()"]
    assert POSIX["close()"].startswith("https://pubs.opengroup.org/")
    assert reference_url("no reference at all") is None


def test_index_is_well_formed():
    for path, symbols in KERNEL_SYMBOLS.items():
        assert path.split("/")[0] in {"net", "include", "kernel", "fs"} and path.endswith((".c", ".h")), path
        assert symbols, path
    for number, sections in RFC_SECTIONS.items():
        for section, title in sections.items():
            assert title.strip(), (number, section)
            assert section == "" or all(part.isdigit() for part in section.split(".")), (number, section)
