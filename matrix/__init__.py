"""The kernel × profile matrix runner (``python -m matrix``): one independent job per configuration, each writing its
own run directory, then one matrix report built from those directories by ``python -m reports matrix``."""
