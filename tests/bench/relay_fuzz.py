"""Long property-based run of the relay's hostile-input invariants (a script, not a test):
``python tests/bench/relay_fuzz.py [--examples 20000]``.

Runs the same hypothesis tests CI runs (``tests/unit/relay/test_properties.py``: no 5xx for
any input at either endpoint, hostile text, ids and nesting; ``test_event_limits.py``:
every event within PagerDuty's limits) with many more examples per test. CI runs a few
thousand cases in all (``PAGERBRIDGE_PROPERTY_EXAMPLES`` default); this is the long run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ["tests/unit/relay/test_properties.py", "tests/unit/relay/test_event_limits.py"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=20000, help="examples per test")
    args = parser.parse_args()
    env = {**os.environ, "PAGERBRIDGE_PROPERTY_EXAMPLES": str(args.examples)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
