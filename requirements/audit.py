"""`make lint`'s dependency audit: pip-audit over every locked dependency set (the image's and
the development venv's, and checkov's own), its findings answered by requirements/audit-ignore.txt.

pip-audit asks a vulnerability service (PyPI's JSON API by default) about each pinned version.
Where that service cannot be reached -- as on the development machine and CI here, whose
network reaches PyPI's package index but not its per-release JSON nor OSV -- pip-audit does not
fail: it skips every package ("could not be audited") and says "No known vulnerabilities
found". This gate does not take that for a pass. It tells three outcomes apart:

- every package audited, no finding outside the ignore list: exit 0;
- a finding outside the ignore list, or some packages not audited while others were: exit 1,
  naming each;
- nothing audited at all (the service unreachable): a clear message that the audit did not
  run, and exit 0 -- so CI without that service is not failed spuriously -- unless
  ``--require-service`` (or AUDIT_REQUIRE_SERVICE=1) asks for exit 1, as a release pipeline
  with the network should (docs/decisions.md, "Auditing the locked dependencies").
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCKS = [HERE / "lock.txt", HERE / "dev-lock.txt", HERE / "checkov-lock.txt"]
IGNORES = HERE / "audit-ignore.txt"
UNREACHABLE = 2  # an outcome of its own; the process exits 0 for it unless asked not to


def ignored(path: Path = IGNORES) -> dict[str, str]:
    """The ignore list: a vulnerability id and the reason it does not apply, one a line."""
    found = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ident, _, reason = line.partition(" ")
        if not re.fullmatch(r"[A-Za-z]+-[\w-]+", ident) or len(reason.strip()) < 10:
            raise SystemExit(
                f"{path.name}:{number}: an id and the reason it is ignored, not {raw!r}"
            )
        found[ident] = reason.strip()
    return found


def verdict(report: dict | None, ignore: dict[str, str]) -> tuple[int, list[str]]:
    """The outcome (0 pass, 1 fail, UNREACHABLE) and what to tell, from pip-audit's JSON."""
    if report is None:
        return UNREACHABLE, ["pip-audit gave no report: the vulnerability service is unreachable"]
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = [d for d in dependencies if not d.get("skip_reason")]
    if dependencies and not audited:
        reason = skipped[0]["skip_reason"]
        return UNREACHABLE, [
            f"none of the {len(skipped)} locked packages could be audited "
            f"(first reason: {reason}): the vulnerability service is unreachable from here"
        ]
    lines, status = [], 0
    for dependency in audited:
        for vuln in dependency.get("vulns", []):
            names = {vuln["id"], *vuln.get("aliases", [])}
            if names & set(ignore):
                continue
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            lines.append(
                f"{dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixes})"
            )
            status = 1
    for dependency in skipped:
        lines.append(f"{dependency['name']} {dependency.get('version', '')}: not audited: "
                     f"{dependency['skip_reason']}")  # fmt: skip
        status = 1
    return status, lines


# What pip-audit's failure says when the service is not there (no JSON then).
NETWORK_ERRORS = ("ConnectionError", "NameResolutionError", "Max retries exceeded", "timed out")


class AuditFailed(Exception):
    """pip-audit could not audit for another reason than the network: a broken lock file,
    say. Never taken for an unreachable service."""


def run_pip_audit(lock: Path, ignore: dict[str, str]) -> dict | None:
    """pip-audit's JSON report on one lock file (each alone: pip-audit refuses a package
    pinned in two of them), or None when the vulnerability service could not be reached."""
    command = [sys.executable, "-m", "pip_audit", "--disable-pip", "--format", "json",
               "--progress-spinner", "off", "-r", str(lock)]  # fmt: skip
    for ident in ignore:
        command += ["--ignore-vuln", ident]
    # (The command is this interpreter, pip-audit and our own files: nothing untrusted.)
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=600, check=False
    )
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        if any(sign in result.stderr for sign in NETWORK_ERRORS):
            return None
        lines = result.stderr.strip().splitlines() or ["(nothing on stderr)"]
        raise AuditFailed(f"pip-audit failed on {lock.name}: {lines[-1]}") from None


def audit_locks(locks: list[Path], ignore: dict[str, str]) -> dict | None:
    """One report over every lock: each package and version once."""
    seen: dict[tuple[str, str], dict] = {}
    for lock in locks:
        report = run_pip_audit(lock, ignore)
        if report is None:
            return None
        for dependency in report.get("dependencies", []):
            seen.setdefault((dependency["name"], dependency.get("version", "")), dependency)
    return {"dependencies": list(seen.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--require-service",
        action="store_true",
        default=os.environ.get("AUDIT_REQUIRE_SERVICE") == "1",
        help="fail when the vulnerability service cannot be reached",
    )
    parser.add_argument("--report", help="read pip-audit's JSON from this file instead")
    args = parser.parse_args(argv)
    ignore = ignored()
    if args.report:
        report = json.loads(Path(args.report).read_text())
    else:
        try:
            report = audit_locks(LOCKS, ignore)
        except AuditFailed as exc:
            print(exc, file=sys.stderr)
            return 1
    status, lines = verdict(report, ignore)
    if status == UNREACHABLE:
        print("dependency audit NOT RUN: " + lines[0], file=sys.stderr)
        if args.require_service:
            return 1
        print("  (passing anyway: run `make audit` where PyPI's JSON API or OSV is reachable; "
              "AUDIT_REQUIRE_SERVICE=1 makes this fail)", file=sys.stderr)  # fmt: skip
        return 0
    for line in lines:
        print(line, file=sys.stderr)
    if status == 0:
        audited = len(report.get("dependencies", []))
        print(f"dependency audit: {audited} locked packages, no known vulnerability "
              f"({len(ignore)} ignored with reasons in {IGNORES.name})")  # fmt: skip
    return status


if __name__ == "__main__":
    sys.exit(main())
