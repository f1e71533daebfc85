"""Helpers for the harness's own tests. Tests marked `root` need CAP_SYS_ADMIN + CAP_NET_ADMIN; without
them they are skipped with that reason (the pure-logic tests still run)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from fixtures.plugin import privileged
from netns.namespace import cookie_of_path

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if privileged():
        return
    skip = pytest.mark.skip(reason="needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def netns_in_use(pids: Iterable[int] | None = None) -> dict[str, str]:
    """Network namespaces held by these processes (default: every process), as a thread's namespace or
    through an fd: inode name ("net:[4026532246]") -> one path that reaches it."""
    if pids is None:
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    found: dict[str, str] = {}
    for pid in pids:
        # an fd first: it holds its namespace for good, while a thread's ns link moves as the thread setns()es
        for link in [*Path(f"/proc/{pid}/fd").glob("*"), *Path(f"/proc/{pid}/task").glob("*/ns/net")]:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target.startswith("net:["):
                found.setdefault(target, str(link))
    return found


def netns_cookies_in_use(pids: Iterable[int] | None = None) -> set[int]:
    """The same namespaces by cookie: inode numbers are reused at once (another test's new namespace can
    get a freed one), cookies never are."""
    cookies = set()
    for target, path in netns_in_use(pids).items():
        try:
            cookie = cookie_of_path(path)
            if os.readlink(path) != target:
                continue  # a thread's link that moved (setns) while we read it: not this namespace's cookie
            cookies.add(cookie)
        except OSError:
            continue  # its holder went away meanwhile
    return cookies


def run_pytest(*args: str, cwd: Path = REPO, timeout: float = 120, env_extra: dict[str, str] | None = None,
               **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_XDIST_WORKER_COUNT", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)
