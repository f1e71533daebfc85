"""Reports for sockconf runs: a self-contained HTML report, JUnit XML, and run comparison.

Everything here reads only a run directory: its ``results.json`` (schema ``sockconf/results/2`` or the older
``sockconf/results/1``, see ``reports/SCHEMA.md``) and the pcaps beside it.  Entry point:
``python -m reports --help``.
"""

SCHEMAS = ("sockconf/results/1", "sockconf/results/2")
"""Every results schema the reports read; fields a version lacks are filled with defaults by ``load``."""
SCHEMA = SCHEMAS[-1]
"""The newest schema, the one the plugin writes."""
