# sockconf: the two commands of the README are `make report` (the suite on this kernel, HTML report) and
# `make test` (the harness's own tests and the whole conformance catalogue). Both run `setup` first.
# Run as root: the suite creates network namespaces.

PYTHON ?= python3
PYTEST  = $(PYTHON) -m pytest
APT_PACKAGES = iproute2 nftables ethtool tcpdump libpcap0.8 util-linux procps chromium chromium-driver \
               qemu-system-x86 busybox-static kmod udev
# auto: sockconf's choice (fixtures/ordering.py): WORKERS_PER_CPU workers per core on the host, more than cores since a
# case waiting on a kernel timer holds no CPU and the longest start first; one per core in an emulated guest.
WORKERS ?= auto
KERNEL ?= host
KERNELS ?= host debian:6.1 debian:6.12
PROFILES ?= default short-fin-timeout
MATRIX_ARGS ?=
export PIP_BREAK_SYSTEM_PACKAGES = 1
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup apt pip test quick report lint bench clean guest-smoke bench-kernels selfcheck matrix durations

setup: apt pip

apt:
	@command -v apt-get >/dev/null || { echo "setup: apt-get not found (Debian 12 expected)"; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null

pip:
	$(PYTHON) -m pip install -q -e '.[dev]'

# The README's test command: harness tests + every conformance case (slow ones included).
test: setup
	$(PYTEST) -n $(WORKERS) tests conformance

# Everything but the cases marked slow (they wait on kernel defaults of a minute or more).
quick:
	$(PYTEST) -n $(WORKERS) -m "not slow" tests conformance

# The README's main command: the conformance suite on this kernel; ends by printing the report's path.
report: setup
	$(PYTEST) -n $(WORKERS) conformance --kernel $(KERNEL) $(PYTEST_ARGS)

# Every kernel x profile as its own job (one guest at a time), then one matrix report; prints its path last.
# Exit as compare's: 0 same behaviour, 1 differs, 2 a job left no run / unreadable run, 4 bad command line.
matrix: setup
	$(PYTHON) -m matrix --kernels "$(KERNELS)" --profiles "$(PROFILES)" $(MATRIX_ARGS) -- conformance -n $(WORKERS) $(PYTEST_ARGS)

# A Debian kernel in a virtme-ng guest (emulated here), a handful of cases end to end: what CI boots.
guest-smoke:
	$(PYTEST) conformance/test_shutdown.py -k "ipv4 and (order or unconnected)" -m "not slow" -p no:xdist \
		--kernel debian:6.1

# Proof that compare can gate a rollout: an A/A pair and behaviour-changing tunings (selfcheck/tunings.toml).
selfcheck: setup
	$(PYTHON) -m selfcheck

bench-kernels:
	$(PYTHON) bench/bench_kernels.py --timing

lint:
	$(PYTHON) -m ruff check .

bench:
	$(PYTHON) bench/bench_harness.py --workers $(WORKERS)

# Refresh conformance/durations.json (the expected durations the longest-first order reads) from a full run and
# a run of the default selection (where long timers are read, not waited out).
durations:
	rm -rf build/durations-run build/durations-quick
	-$(PYTEST) -n $(WORKERS) conformance --results-dir build/durations-run --no-report -q
	$(PYTHON) -m fixtures.ordering refresh build/durations-run
	-$(PYTEST) -n $(WORKERS) conformance -m "not slow" --results-dir build/durations-quick --no-report -q
	$(PYTHON) -m fixtures.ordering refresh build/durations-quick

clean:
	rm -rf reports/runs build *.egg-info
