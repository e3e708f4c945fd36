"""Fetch the stack's jars from Maven Central with stack/pom.xml, once per version of the pom."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from stack.errors import StackError
from stack.layout import POM_PATH, StackLayout

__all__ = ["fetch_jars", "jars_ready", "pom_digest"]


def pom_digest(pom: Path = POM_PATH) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def jars_ready(layout: StackLayout, pom: Path = POM_PATH) -> bool:
    """True when lib/ holds the jars of this exact pom (the stamp is written only after a full copy)."""
    try:
        return layout.lib_stamp.read_text().strip() == pom_digest(pom) and any(layout.lib_dir.glob("*.jar"))
    except FileNotFoundError:
        return False


def fetch_jars(layout: StackLayout, *, pom: Path = POM_PATH, force: bool = False) -> bool:
    """Copy the pom's runtime jars into lib/. Returns False when they were already there.

    Copies into a fresh folder then swaps it in, so an interrupted fetch never leaves a half classpath
    (for instance jars of two Kafka versions side by side after a version bump).
    """
    if not force and jars_ready(layout, pom):
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is not on PATH: install it (Debian: apt-get install maven) and retry")
    layout.root.mkdir(parents=True, exist_ok=True)
    staging = layout.root / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        output = (result.stdout + result.stderr).strip().splitlines()
        raise StackError(
            f"fetching the stack's jars failed (exit {result.returncode}): {' '.join(cmd)}\n"
            + "\n".join(output[-40:])
        )
    if not any(staging.glob("*.jar")):
        raise StackError(f"Maven reported success but copied no jar into {staging}")
    shutil.rmtree(layout.lib_dir, ignore_errors=True)
    staging.replace(layout.lib_dir)
    layout.lib_stamp.write_text(pom_digest(pom) + "\n")
    return True
