"""Runs the DynamoDB sink's JUnit tests (mapping, key parsing, batch writer, task) so `make test` covers them.

install() runs them too, but only when the connector's sources changed; this runs them every time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from connectors.sink import MAVEN_PROJECT


def test_the_connectors_junit_suite_passes(tmp_path: Path) -> None:
    mvn = shutil.which("mvn")
    assert mvn is not None, "Maven (mvn) is needed to test the DynamoDB sink connector"
    proc = subprocess.run(
        [mvn, "-B", "-f", str(MAVEN_PROJECT / "pom.xml"), f"-Dnudge.build.dir={tmp_path}", "test"],
        capture_output=True, text=True, check=False, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, "\n".join(output.splitlines()[-60:])
    totals = re.findall(r"Tests run: (\d+), Failures: (\d+), Errors: (\d+), Skipped: (\d+)\s*$", output, re.M)
    assert totals, "surefire printed no totals"
    run, failures, errors, _ = map(int, totals[-1])
    assert run >= 25 and failures == 0 and errors == 0, totals[-1]
