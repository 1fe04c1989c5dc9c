"""Tally of the reliability catalogue (tests/reliability/test_catalogue.py): cases tried and cases that ran clean."""
from __future__ import annotations

_TRIED: set[str] = set()
_DIRTY: set[str] = set()
_MODULE = "test_catalogue.py"


def pytest_runtest_logreport(report):
    if _MODULE not in report.nodeid.split("::")[0]:
        return
    if report.when == "setup" and report.skipped:
        return
    _TRIED.add(report.nodeid)
    if report.failed or (report.when == "call" and report.skipped):
        _DIRTY.add(report.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _TRIED:
        return
    clean = len(_TRIED - _DIRTY)
    terminalreporter.write_sep("-", "reliability catalogue")
    terminalreporter.write_line(f"reliability catalogue: tried {len(_TRIED)} / clean {clean}")
