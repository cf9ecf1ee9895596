"""Cold-start cost of the Lambda code: the import time of app.py against a bare `import boto3`,
and the size of the deployment package.

Run: .venv/bin/python -m bench.cold_start [--runs 5] [--no-package] [--quick]

Import time: each of `python -c pass`, `python -c "import boto3"` and `python -c "import app"`
(cwd = the project, as /var/task on Lambda) runs --runs times in a fresh interpreter, after one
discarded run that fills the bytecode caches; the time is the subprocess's wall clock, and an
import's cost is its median minus the median of `pass` (interpreter start-up). Goal: app.py costs
at most 1.5x boto3, which the Lambda runtime imports anyway. `-X importtime` of `import app` then
charges its cost to top-level packages (self microseconds summed per package, one run).
The warm-up can write bytecode caches even where PYTHONDONTWRITEBYTECODE is set.

Package: `make package`'s deployment.zip (infra.template.package: `chalice package`, which
downloads Lambda wheels from PyPI and keeps them in build/chalice, plus the bytecode of what the
handlers import): its size, its 10 largest top-level entries (compressed bytes), and the cold
init as on Lambda: `import app` run in the unpacked package, first on the path and with nothing
written (Lambda's /var/task is read-only, so a module shipped without bytecode is compiled at every
cold start), against `import boto3`; and the same with the package's bytecode removed, which is
what chalice alone ships. If packaging fails, the error is reported.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.5


# ---- import time ---------------------------------------------------------------------------
# The warm-up run must be able to write bytecode caches (an environment may forbid it).
_LOCAL_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _wall_s(code: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_LOCAL_ENV,
        check=True,
        stdout=subprocess.DEVNULL,
    )
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
        env=_LOCAL_ENV,
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


# ---- package size and the package's own cold init -----------------------------------------
def _top_entries(archive: Path, count: int = 10) -> list[tuple[str, int]]:
    sizes: Counter[str] = Counter()
    with zipfile.ZipFile(archive) as package:
        for info in package.infolist():
            sizes[info.filename.split("/", 1)[0]] += info.compress_size
    return sizes.most_common(count)


def _import_in(root: Path, code: str, runs: int) -> tuple[float, float]:
    """Medians of the wall clock and of the CPU time (user + system) of `python -c code` run in
    root as Lambda runs /var/task: the package first on the path, and nothing written there (it
    is read-only). CPU time hardly moves when other processes share the machine; wall clock
    does."""
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}

    def once() -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    once()
    measured = [once() for _ in range(runs)]
    return (
        statistics.median(wall for wall, _ in measured),
        statistics.median(cpu for _, cpu in measured),
    )


def measure_package_imports(archive: Path, runs: int) -> dict[str, Any]:
    """`import app` from the unpacked deployment package against `import boto3` (the runtime's,
    here .venv's), as shipped (with bytecode) and with its bytecode removed."""
    with tempfile.TemporaryDirectory() as scratch:
        shipped, sources_only = Path(scratch) / "shipped", Path(scratch) / "sources"
        with zipfile.ZipFile(archive) as package:
            package.extractall(shipped)
            package.extractall(sources_only)
        for compiled in sources_only.rglob("*.pyc"):
            compiled.unlink()
        startup = _import_in(shipped, "pass", runs)
        boto3, app, bare = (
            [m - s for m, s in zip(_import_in(root, code, runs), startup, strict=True)]
            for root, code in (
                (shipped, "import boto3"),
                (shipped, "import app"),
                (sources_only, "import app"),
            )
        )
    return {
        "method": "the unpacked package as /var/task (on the path, read-only: no bytecode "
        "written), median of fresh interpreters minus `pass`; wall clock, and CPU time",
        "import_boto3_s": round(boto3[0], 3),
        "import_app_s": round(app[0], 3),
        "ratio_app_over_boto3": round(app[0] / boto3[0], 2),
        "import_app_without_bytecode_s": round(bare[0], 3),
        "ratio_without_bytecode": round(bare[0] / boto3[0], 2),
        "cpu_import_boto3_s": round(boto3[1], 3),
        "cpu_import_app_s": round(app[1], 3),
        "cpu_ratio_app_over_boto3": round(app[1] / boto3[1], 2),
        "cpu_ratio_without_bytecode": round(bare[1] / boto3[1], 2),
    }


def measure_package(runs: int) -> dict[str, Any]:
    """`make package`'s deployment.zip (infra.template.package, chalice's wheel cache in
    build/chalice): its size, largest entries and cold init."""
    from infra.template import PackageError, package

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "package"
        started = time.perf_counter()
        try:
            package("prod", out)
        except PackageError as exc:
            return {"error": str(exc)}
        archive = out / "deployment.zip"
        return {
            "method": "make package (chalice package + bytecode of what the handlers import)",
            "seconds": round(time.perf_counter() - started, 1),
            "deployment_zip_bytes": archive.stat().st_size,
            "top_entries_compressed_bytes": _top_entries(archive),
            "imports": measure_package_imports(archive, runs),
        }


def run(*, runs: int, package: bool) -> dict[str, Any]:
    return {
        "bench": "cold_start",
        "imports": measure_imports(runs),
        "package": measure_package(runs) if package else None,
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
