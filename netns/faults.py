"""Fault injection with nftables, only ever inside a namespace sockconf created (no netem on these kernels).

Drops happen at the *receiving* namespace's prerouting hook, so a dropped segment is still seen by the
capture on the veth (it was "on the wire") but never reaches the receiving TCP: it behaves as loss in
flight. Each rule has a counter, read back as evidence of how many segments it dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from netns import nft
from netns.namespace import Namespace, NamespaceError

TABLE = "sockconf_faults"
FLAG_NAMES = {"F": "fin", "S": "syn", "R": "rst", "P": "psh", "A": "ack", "U": "urg"}


def _mask(flags: str | dict[str, str]) -> str:
    return "|".join(FLAG_NAMES[f] for f in flags)


@dataclass
class DropRule:
    """Drop TCP segments arriving in `ns` that match; `flags` are nft tcp flag tests."""

    name: str
    match: str
    handle: int = 0
    comment: str = field(default="")


class Faults:
    """The drop rules of one receiving namespace. Created lazily: no table exists until the first rule."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.rules: dict[str, DropRule] = {}
        self.removed_counts: dict[str, int] = {}
        self._table = False

    def _nft(self, script: str, echo: bool = False) -> str:
        return nft.run(self.ns, script, echo=echo, handles=echo)

    def drop(self, name: str, match: str) -> DropRule:
        """Add a drop rule: `match` is an nft expression on TCP, e.g. 'tcp flags & fin == fin'.

        One nft script per rule (the table, on the first, in the same transaction; the rule's handle read from
        its echo): a case often installs a rule between two kernel timers."""
        if name in self.rules:
            raise ValueError(f"drop rule {name!r} exists already")
        table = "" if self._table else (
            f"table inet {TABLE} {{\n"
            "  chain pre { type filter hook prerouting priority -300; policy accept; }\n"
            "}\n")
        echo = self._nft(f'{table}add rule inet {TABLE} pre meta l4proto tcp {match} counter drop comment "{name}"\n',
                         echo=True)
        self._table = True
        handles = [int(m.group(1)) for m in re.finditer(r"^add rule .* # handle (\d+)$", echo, re.MULTILINE)]
        if len(handles) != 1:
            raise NamespaceError(f"nft did not echo the handle of drop rule {name!r}: {echo.strip()!r}")
        rule = DropRule(name, match, handles[0])
        self.rules[name] = rule
        return rule

    def drop_flags(self, name: str, has: str = "", exactly: str | None = None, match: str = "") -> DropRule:
        """Drop segments carrying every flag in `has` (e.g. "F"), or exactly the flags in `exactly`
        (e.g. "A": a bare ACK without PSH, which on these tests is a pure ACK), that also satisfy the nft
        expression `match` (e.g. "tcp ackseq 12345")."""
        if exactly is not None:
            flags = f"tcp flags & ({_mask(FLAG_NAMES)}) == {_mask(exactly)}"
        else:
            flags = f"tcp flags & ({_mask(has)}) == {_mask(has)}" if has else ""
        return self.drop(name, " ".join(part for part in (flags, match) if part))

    def blackhole(self, name: str = "blackhole") -> DropRule:
        """Drop every TCP segment arriving in this namespace."""
        return self.drop(name, "")

    def remove(self, name: str) -> None:
        """Delete a rule; what it dropped stays in counters()."""
        self.removed_counts[name] = self.counters().get(name, 0)
        rule = self.rules.pop(name)
        self._nft(f"delete rule inet {TABLE} pre handle {rule.handle}\n")

    def _ruleset(self) -> list[dict]:
        out = nft.run(self.ns, f"list table inet {TABLE}\n", json=True)
        return [item["rule"] for item in json.loads(out)["nftables"] if "rule" in item]

    def counters(self) -> dict[str, int]:
        """Packets dropped so far, by rule name."""
        if not self._table:
            return dict(self.removed_counts)
        counts: dict[str, int] = dict(self.removed_counts)
        for rule in self._ruleset():
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    counts[rule.get("comment", "")] = expr["counter"]["packets"]
        return counts

    def close(self) -> None:
        """Delete the table (the namespace's own teardown would too; this keeps state explicit)."""
        if self._table:
            self._nft(f"delete table inet {TABLE}\n")
            self._table = False
            self.rules.clear()
