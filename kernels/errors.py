"""Exit codes of `python -m kernels` and the errors behind them: the one place they are defined.

Every failure is one line on stderr (`kernels: <what went wrong>`), then the exit code below. Codes below 10 are
pytest's own (the guest's pytest exit code is passed through unchanged: 0 passed, 1 some failed, 2 interrupted,
3 internal error, 4 usage error, 5 no tests collected), so a CI job can tell the runner's failures from the suite's.
"""

from __future__ import annotations

BAD_SPEC = 10  # the --kernel SPEC is malformed, or names a path that is not a bootable x86 kernel (or its modules)
NOT_SHIPPED = 11  # debian:<series> that Debian 12's archive does not ship (or apt cannot fetch it)
MISSING_OPTION = 12  # the kernel's config lacks an option the suite needs (or its config cannot be found)
NO_BOOT = 13  # the guest did not reach our command within the boot timeout, twice; the console's tail is printed
GUEST_DIED = 14  # the guest died (or hit the run timeout) while the suite ran; cases already written are kept
HOST_TOOLS = 15  # the host lacks what a guest run needs (vng, qemu-system-x86_64, busybox, depmod, virtiofsd)

CODES = {
    BAD_SPEC: "bad --kernel spec / not a kernel",
    NOT_SHIPPED: "kernel series Debian 12 does not ship",
    MISSING_OPTION: "kernel lacks a config option the suite needs",
    NO_BOOT: "guest did not boot (after one retry)",
    GUEST_DIED: "guest died mid-run (partial results kept, marked incomplete)",
    HOST_TOOLS: "host lacks a tool a guest run needs",
}


class KernelsError(Exception):
    """A failure with its exit code; str() is the one line printed."""

    code = 1

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail  # printed after the line (e.g. the console's tail), may be empty


class BadSpec(KernelsError):
    code = BAD_SPEC


class NotShipped(KernelsError):
    code = NOT_SHIPPED


class MissingOption(KernelsError):
    code = MISSING_OPTION


class NoBoot(KernelsError):
    code = NO_BOOT


class GuestDied(KernelsError):
    code = GUEST_DIED


class HostTools(KernelsError):
    code = HOST_TOOLS
