"""Sum the JUnit XML files of a test run into one closing line.

Exits non-zero when any test failed or errored, or when no test ran at all: a
green run must have run tests.
"""
import os
import pathlib
import sys
import xml.etree.ElementTree as ET


def count(path):
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    for suite in suites:
        for key in totals:
            totals[key] += int(suite.get(key, 0) or 0)
    return totals


def record(directory, suite, case, status):
    """Write a one-case JUnit file for a check that is not a pytest run (lint, Molecule)."""
    failed = status != "0"
    body = f'<failure message="exit status {status}"/>' if failed else ""
    xml = (f'<testsuite name="{suite}" tests="1" failures="{int(failed)}" errors="0" skipped="0">'
           f'<testcase classname="{suite}" name="{case}">{body}</testcase></testsuite>\n')
    pathlib.Path(directory, f"{suite}-{case}.xml").write_text(xml)
    return 0


def main(directory):
    grand = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for path in sorted(pathlib.Path(directory).glob("*.xml")):
        totals = count(path)
        for key in grand:
            grand[key] += totals[key]
        passed = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
        print(f"  {path.stem}: {passed} passed, {totals['failures'] + totals['errors']} failed, {totals['skipped']} skipped")
    failed = grand["failures"] + grand["errors"]
    passed = grand["tests"] - failed - grand["skipped"]
    print(f"total: {passed} passed, {failed} failed, {grand['skipped']} skipped")
    if grand["tests"] == 0:
        print("no test ran: failing the run")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--record":
        sys.exit(record(os.environ.get("JUNIT_DIR", "."), *sys.argv[2:]))
    sys.exit(main(sys.argv[1]))
