"""Reports for sockconf runs: a self-contained HTML report, JUnit XML, and run comparison.

Everything here reads only a run directory: its ``results.json`` (schema ``sockconf/results/1``,
see ``reports/SCHEMA.md``) and the pcaps beside it.  Entry point: ``python -m reports --help``.
"""

SCHEMA = "sockconf/results/1"
