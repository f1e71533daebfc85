"""Other kernels: boot one with virtme-ng and run the suite in it (python -m kernels; see kernels/run.py)."""
