"""Cold-start cost of the Lambda code: the import time of app.py against a bare `import boto3`,
and the size of the deployment package.

Run: .venv/bin/python -m bench.cold_start [--runs 5] [--no-package] [--quick]

Import time: each of `python -c pass`, `python -c "import boto3"` and `python -c "import app"`
(cwd = the project, as /var/task on Lambda) runs --runs times in a fresh interpreter, after one
discarded run that fills the bytecode caches; the time is the subprocess's wall clock, and an
import's cost is its median minus the median of `pass` (interpreter start-up). Goal: app.py costs
at most 1.5x boto3, which the Lambda runtime imports anyway. `-X importtime` of `import app` then
charges its cost to top-level packages (self microseconds summed per package, one run).
Caveat: locally the bytecode is cached; on Lambda the package's own modules (not the runtime's
boto3) may be compiled at each cold start, which adds to both the package's and app's share.

Package: `chalice package --pkg-format cloudformation` in a temporary copy of the project (so
chalice's wheel cache stays out of the checkout; it downloads Lambda wheels from PyPI, with a
300 s timeout): deployment.zip's size and its 10 largest top-level entries (compressed bytes).
If chalice fails, the error is reported and the size is estimated instead by zipping the
installed files of requirements.txt's packages and their dependencies from .venv, as chalice would
resolve them (boto3 is not among them: the Lambda runtime provides it), plus app.py and
chalicelib/.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.5
PACKAGE_TIMEOUT_S = 300
# What `chalice package` reads from the project; its deployment cache is left behind.
PROJECT_FILES = ("app.py", "requirements.txt", "chalicelib", ".chalice/config.json")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


# ---- import time ---------------------------------------------------------------------------
def _wall_s(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def median_wall_s(code: str, runs: int) -> float:
    _wall_s(code)  # fills the bytecode caches; not counted
    return statistics.median(_wall_s(code) for _ in range(runs))


def importtime_by_package(module: str, count: int = 8) -> list[tuple[str, int]]:
    """`-X importtime` of `import module`: self time (µs) summed per top-level package, costliest
    first, so the cost is charged to what brings it (botocore, pydantic, chalicelib …)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    packages: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package" (nesting indents the name)
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            packages[parts[2].strip().split(".", 1)[0]] += int(parts[0])
    return packages.most_common(count)


def measure_imports(runs: int) -> dict[str, Any]:
    startup = median_wall_s("pass", runs)
    boto3_s = median_wall_s("import boto3", runs) - startup
    app_s = median_wall_s("import app", runs) - startup
    ratio = app_s / boto3_s
    return {
        "method": "median wall clock of a fresh `python -c` minus that of `python -c pass`",
        "runs": runs,
        "python_startup_s": round(startup, 3),
        "import_boto3_s": round(boto3_s, 3),
        "import_app_s": round(app_s, 3),
        "ratio_app_over_boto3": round(ratio, 2),
        "goal_ratio": GOAL_RATIO,
        "met": ratio <= GOAL_RATIO,
        "app_importtime_self_us_by_package": importtime_by_package("app"),
    }


# ---- package size --------------------------------------------------------------------------
def _top_entries(archive: Path, count: int = 10) -> list[tuple[str, int]]:
    sizes: Counter[str] = Counter()
    with zipfile.ZipFile(archive) as package:
        for info in package.infolist():
            sizes[info.filename.split("/", 1)[0]] += info.compress_size
    return sizes.most_common(count)


def _copy_project(destination: Path) -> None:
    for name in PROJECT_FILES:
        source = ROOT / name
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)


def chalice_package() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "project"
        _copy_project(project)
        chalice = Path(sys.executable).with_name("chalice")
        # chalice wants a region even to package; nothing is deployed.
        env = {
            **os.environ,
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        }
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [str(chalice), "package", "--pkg-format", "cloudformation", str(project / "out")],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=PACKAGE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"chalice package took more than {PACKAGE_TIMEOUT_S} s"}
        archive = project / "out" / "deployment.zip"
        if done.returncode != 0 or not archive.exists():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:]
            return {"error": f"chalice package exited {done.returncode}: {' '.join(last)}"}
        return {
            "method": "chalice package --pkg-format cloudformation",
            "seconds": round(time.perf_counter() - started, 1),
            "deployment_zip_bytes": archive.stat().st_size,
            "top_entries_compressed_bytes": _top_entries(archive),
        }


def _requirements() -> list[str]:
    names = []
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if (match := _REQUIREMENT_NAME.match(line)) and not line.lstrip().startswith("#"):
            names.append(match.group(1))
    return names


def _closure(names: Sequence[str]) -> Iterator[metadata.Distribution]:
    """The installed distributions of `names` and of what they require (no extras)."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        yield dist
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            if match := _REQUIREMENT_NAME.match(requirement):
                pending.append(match.group(1))


def estimate_package() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "estimate.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as package:
            for dist in _closure(_requirements()):
                for file in dist.files or []:
                    path = Path(str(dist.locate_file(file)))
                    if path.is_file() and "__pycache__" not in file.parts:
                        package.write(path, str(file))
            for source in [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*"))]:
                if source.is_file() and "__pycache__" not in source.parts:
                    package.write(source, str(source.relative_to(ROOT)))
        return {
            "method": "estimate: requirements.txt's installed packages and their dependencies "
            "from .venv, plus app.py and chalicelib/, deflated into one zip",
            "deployment_zip_bytes": archive.stat().st_size,
            "top_entries_compressed_bytes": _top_entries(archive),
        }


def measure_package() -> dict[str, Any]:
    packaged = chalice_package()
    if "error" in packaged:
        return {**estimate_package(), "chalice_error": packaged["error"]}
    return packaged


def run(*, runs: int, package: bool) -> dict[str, Any]:
    return {
        "bench": "cold_start",
        "imports": measure_imports(runs),
        "package": measure_package() if package else None,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per import")
    parser.add_argument("--no-package", action="store_true", help="skip the package size")
    parser.add_argument("--quick", action="store_true", help="2 runs per import")
    args = parser.parse_args(argv)
    runs = 2 if args.quick else args.runs
    print(json.dumps(run(runs=runs, package=not args.no_package)))


if __name__ == "__main__":
    main()
