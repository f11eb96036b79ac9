"""The report: run folders -> one self-contained HTML page (``page``), its style (``style``), the
ladder-vs-DDPM page (``sidebyside``) and the ``connlab report`` command (``command``).

Nothing here imports torch at import time.
"""

from connlab.experiments.section import NOT_MEASURED, Run, Section, Table, load_run
from connlab.report.page import build_report, build_section, render

__all__ = ["NOT_MEASURED", "Run", "Section", "Table", "build_report", "build_section", "load_run", "render"]
