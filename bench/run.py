"""Run the portal's benchmarks: `make bench` (all) or `make bench ARGS="registry"`.

Each benchmark is a module of this package with a ``run(options)`` function and a
``DESCRIPTION``. Django reads its settings once per process and every benchmark works on its
own database, so when several run, each gets a process of its own.
"""

import argparse
import importlib
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# Run as a script, Python puts bench/ itself first on sys.path, where bench/pages.py and
# bench/automation.py would stand in for the apps of the same names (``import pages``,
# INSTALLED_APPS) -- even with the root on PYTHONPATH, which comes after it. The root goes
# first instead, and bench/ leaves the path: its modules are imported as ``bench.<name>``.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() not in (ROOT, HERE)]

# Name -> module under bench/. Add a module here to add a benchmark.
BENCHMARKS = {
    "registry": "bench.registry",
    "config": "bench.config",
    "health": "bench.health",
    "automation": "bench.automation",
    "pages": "bench.pages",
    "embedded_broker": "bench.embedded_broker",
    "security_events": "bench.security_events",
    "overview_rows": "bench.overview_rows",
    "deploy_verify": "bench.deploy_verify",
    "suite": "bench.suite",
    "worker_memory": "bench.worker_memory",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small dataset and few requests: a smoke test; writes no results file",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for the machine to be idle "
        "(for shared machines; default: do not wait)",
    )
    # A benchmark module may add options of its own (``add_arguments(parser)``).
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for module in BENCHMARKS.values():
        add_arguments = getattr(importlib.import_module(module), "add_arguments", None)
        if add_arguments is not None:
            add_arguments(parser)
    options = parser.parse_args(argv)
    unknown = [name for name in options.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    return options


def stop_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl-C does, through the ``finally`` blocks that stop the
    servers and workers a benchmark started (by default it would kill this process alone and
    leave them running)."""

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str]) -> int:
    stop_on_sigterm()
    options = parse_args(argv)
    names = options.names or list(BENCHMARKS)
    if len(names) == 1:
        importlib.import_module(BENCHMARKS[names[0]]).run(options)
        return 0
    failed = []
    extra = [arg for arg in argv if arg not in BENCHMARKS]  # the options, for each of them
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, __file__, name, *extra], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
