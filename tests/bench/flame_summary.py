"""A flame graph in a few lines: the top frames of a py-spy profile, by self and cumulative share.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;frame count``); this
prints the frames that take the most samples themselves (self) and the frames most samples
pass through (cumulative), each as a share of all samples, so a profile can be compared
before and after a change in a commit message or a closing note. Used by
``relay_throughput.py --profile DIR``; on its own:

    python tests/bench/flame_summary.py PROFILE.txt [--top 15]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
# "function (path/to/module.py:123)" -> "function (module.py)": one row per function.
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "pagerbridge/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['fn']} ({path})"


def summarize(path: Path, top: int = 15) -> str:
    own: Counter[str] = Counter()
    through: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        count = int(match[2])
        frames = [_short(f) for f in match[1].split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            through[frame] += count
    if not total:
        return f"{path.name}: no samples\n"
    out = [f"{path.name}: {total} samples"]
    out.append("  self %   frame")
    out += [f"  {100 * n / total:6.1f}   {f}" for f, n in own.most_common(top)]
    out.append("  cumul %  frame")
    out += [f"  {100 * n / total:6.1f}   {f}" for f, n in through.most_common(top)]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, nargs="+")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for profile in args.profile:
        print(summarize(profile, args.top))


if __name__ == "__main__":
    main()
