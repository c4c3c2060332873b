"""Test ids are the same whenever and wherever they are collected: xdist workers import the
test modules at different moments and abort the session when their collections differ."""

from __future__ import annotations

import subprocess
import sys
import time

from energy_assets.settings import REPO_ROOT


def collected() -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n0", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_two_collections_a_second_apart_give_the_same_ids():
    first = collected()
    time.sleep(1.1)  # a timestamp with one-second resolution (gzip's header) would change
    second = collected()
    assert len(first) > 200
    assert first == second
