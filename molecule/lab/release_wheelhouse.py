#!/usr/bin/env python3
"""Make a wheelhouse for a pretend next release of phonghop, to test playbooks/upgrade.yml on lab hosts.

Why: a rolling upgrade can only be tested with a version the rooms do not run yet. This copies the
project's sources, raises ``phonghop.__version__`` to the N-th post-release of the current one
(0.1.0 -> 0.1.0.postN), builds that wheel and puts it beside the
dependency wheels of an existing wheelhouse (hard links, no second copy). With ``--broken`` the agent
of that release exits at start, as a bad release would: the rollout must stop at the first batch.

Usage: ``release_wheelhouse.py --project DIR --from WHEELHOUSE --out DIR --post N [--broken]``; prints
``{"version": .., "wheel": ..}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.version import Version

SOURCES = ["pyproject.toml", "README.md", "phonghop", "coordinator", "node_agent"]
START = r"^def run_agent\(config: Path\) -> int:\n"
BROKEN_START = (
    "def run_agent(config: Path) -> int:\n"
    '    raise SystemExit("phonghop-agent: this release is broken on purpose (lab upgrade test)")\n'
)


VERSION_LINE = re.compile(r'^__version__ = "(?P<version>.*)"$', flags=re.M)


def next_version(current: str, post: int) -> str:
    version = Version(current)
    return f"{version.base_version}.post{(version.post or 0) + post}"


def build(project: Path, wheelhouse: Path, out: Path, post: int, broken: bool) -> tuple[str, Path]:
    with tempfile.TemporaryDirectory(prefix="phonghop-release-") as tmp:
        src = Path(tmp) / "src"
        for name in SOURCES:
            if (project / name).is_dir():
                shutil.copytree(project / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                src.mkdir(parents=True, exist_ok=True)
                shutil.copy2(project / name, src / name)
        init = src / "phonghop" / "__init__.py"
        current = VERSION_LINE.search(init.read_text())
        if not current:
            raise SystemExit(f"{init}: no __version__ line to change")
        version = next_version(current["version"], post)
        init.write_text(VERSION_LINE.sub(f'__version__ = "{version}"', init.read_text()))
        if broken:
            main = src / "node_agent" / "start.py"
            text, count = re.subn(START, BROKEN_START, main.read_text(), flags=re.M)
            if count != 1:
                raise SystemExit(f"{main}: no run_agent() to break")
            main.write_text(text)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for wheel in wheelhouse.glob("*.whl"):
            if not wheel.name.startswith("phonghop-"):
                os.link(wheel, out / wheel.name)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out), str(src)],
            check=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
        )
    wheels = list(out.glob(f"phonghop-{version}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one phonghop {version} wheel in {out}, found {[w.name for w in wheels]}")
    return version, wheels[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True, help="the phonghop checkout")
    parser.add_argument("--from", dest="wheelhouse", type=Path, required=True, help="wheelhouse to reuse")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--post", type=int, required=True, help="which post-release of the current version")
    parser.add_argument("--broken", action="store_true", help="its agent exits at start")
    args = parser.parse_args()
    version, wheel = build(args.project, args.wheelhouse, args.out, args.post, args.broken)
    print(json.dumps({"version": version, "wheel": str(wheel)}))


if __name__ == "__main__":
    main()
