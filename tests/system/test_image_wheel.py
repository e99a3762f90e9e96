"""The image's wheel, built as the Dockerfile's build stage builds it (issue 23, item 1).

No Docker engine runs here, so the image itself is not built. What the build stage does is
done by hand, from exactly what it is given: the Dockerfile's ``COPY`` lines of the build stage
are read, those paths copied into an empty folder as the build context holds them (what
``.dockerignore`` leaves out stays out), the locked dependencies installed into a fresh
virtual environment (``--require-hashes --no-deps``, as the image does), the wheel built with
``pip wheel`` from that folder and installed beside them. Then, from outside the checkout,
every top-level package of the repository and every module in it is imported from the
installed wheel, and every console script the wheel declares answers ``--help``. A package
added to the repository and forgotten by the Dockerfile (the build stage once copied three of
eight: ``portalctl`` in the image could not import) fails here.
"""

import configparser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
DOCKERFILE = ROOT / "Dockerfile"
NOT_SHIPPED = {"tests", "bench"}


def stages(text: str) -> dict[str, list[str]]:
    """Each stage's instructions (continuation lines joined), by its name or its index."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            parts = line.split()
            name = parts[3] if len(parts) >= 4 and parts[2].upper() == "AS" else str(len(found))
            current = found.setdefault(name, [])
        current.append(line)
    return found


def copies(instructions: list[str]) -> list[tuple[list[str], str]]:
    """The (sources, destination) of each COPY from the build context (not --from=)."""
    result = []
    for line in instructions:
        words = line.split()
        if words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        result.append((args[:-1], args[-1]))
    return result


def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """``.dockerignore`` as (exception?, regex), with Docker's rules: paths relative to the
    context, ``*`` within one folder, ``**`` across folders, a match on a folder takes all
    below it, ``!`` makes an exception, the last matching line wins."""
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif line.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif line[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif line[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(line[i]), i + 1
        patterns.append((negate, re.compile(regex)))
    return patterns


def is_ignored(relative: str, patterns) -> bool:
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]  # itself and parents
    ignored = False
    for negate, pattern in patterns:
        if any(pattern.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def build_context(where: Path) -> Path:
    """The build stage's files, laid out as its COPY lines put them under WORKDIR."""
    patterns = dockerignore_patterns()
    context = where / "context"
    context.mkdir()
    (build,) = [s for name, s in stages(DOCKERFILE.read_text()).items() if name == "build"]
    for sources, destination in copies(build):
        for source in sources:
            assert not is_ignored(source, patterns), f"{source} is copied but .dockerignore'd"
            origin = ROOT / source
            target = context / destination
            if destination.endswith("/") or len(sources) > 1:
                target = target / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_file():
                shutil.copy2(origin, target)
                continue
            for path in sorted(origin.rglob("*")):
                relative = path.relative_to(ROOT).as_posix()
                if path.is_file() and not is_ignored(relative, patterns):
                    (target / path.relative_to(origin)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target / path.relative_to(origin))
    return context


def repository_packages() -> set[str]:
    return {
        p.parent.name
        for p in ROOT.glob("*/__init__.py")
        if p.parent.name not in NOT_SHIPPED and not p.parent.name.startswith(".")
    }


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, f"{args}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


IMPORT_ALL = """
import importlib, os, pkgutil, sys
import django
django.setup()
site, packages = sys.argv[1], sys.argv[2:]
imported = 0
for name in packages:
    package = importlib.import_module(name)
    assert package.__file__.startswith(site), (name, package.__file__)
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        if "." in info.name[len(name) + 1:].split(".")[-1]:
            continue
        module = importlib.import_module(info.name)
        assert module.__file__.startswith(site), (info.name, module.__file__)
        imported += 1
print(imported)
"""


def test_the_wheel_from_the_dockerfiles_context_imports_every_package_and_script(tmp_path):
    context = build_context(tmp_path)
    shipped = {p.name for p in context.iterdir() if (p / "__init__.py").exists()}
    assert shipped == repository_packages()  # every package of the repository, no more
    assert not [p for p in context.rglob("*") if p.name in ("__pycache__", "tests", "bench")]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    lock = context / "requirements" / "lock.txt"
    assert lock.is_file(), "the build stage copies no lock file"
    run(python, "-m", "pip", "install", "-q", "--require-hashes", "--no-deps", "-r", lock, env=env)
    wheels = tmp_path / "wheels"
    run(python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, context, env=env)
    (wheel,) = wheels.glob("service_portal-*.whl")
    run(python, "-m", "pip", "install", "-q", "--no-deps", wheel, env=env)
    run(python, "-m", "pip", "check", env=env)  # the lock holds everything the wheel needs

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = configparser.ConfigParser()
        scripts.read_string(archive.read(entry_points).decode())
    assert {n.split("/")[0] for n in names if "/" in n and ".dist-info" not in n} == shipped

    (site,) = (venv / "lib").glob("python3.*/site-packages")
    outside = tmp_path / "elsewhere"  # not the checkout: nothing imported from its files
    outside.mkdir()
    env_app = {
        **env,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_ENV_FILE": "",
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
        "DEBUG": "true",
    }
    env_app.pop("DATABASE_URL", None)
    env_app.pop("REDIS_URL", None)
    imported = run(python, "-c", IMPORT_ALL, str(site), *sorted(shipped), cwd=outside, env=env_app)
    assert int(imported.stdout.split()[-1]) > 100  # modules, not just the packages

    console = dict(scripts["console_scripts"]) if scripts.has_section("console_scripts") else {}
    assert "portalctl" in console
    for script in console:
        helped = run(venv / "bin" / script, "--help", cwd=outside, env=env_app)
        assert "Usage" in helped.stdout, script


def test_the_runtime_stage_ships_root_owned_code_and_no_tests():
    """The runtime user (uid 10001) owns nothing it runs: no COPY --chown/--chmod to it, the
    user switched to only after every COPY and RUN; tests and benchmarks neither copied nor
    in the build context."""
    runtime = list(stages(DOCKERFILE.read_text()).values())[-1]
    user_at = next(i for i, line in enumerate(runtime) if line.upper().startswith("USER "))
    assert runtime[user_at].split()[1] == "10001"
    for line in runtime[user_at:]:
        assert not line.upper().startswith(("COPY", "ADD", "RUN")), line
    for line in runtime:
        if line.upper().startswith(("COPY", "ADD")):
            assert "--chown" not in line and "--chmod" not in line, line
    sources = {s for srcs, _ in copies(runtime) for s in srcs}
    assert "." not in sources  # not the whole context
    assert not sources & NOT_SHIPPED
    patterns = dockerignore_patterns()
    for path in ("tests/conftest.py", "bench/run.py", "portal/__pycache__/x.pyc", ".env"):
        assert is_ignored(path, patterns), path
    assert not is_ignored("portal/settings.py", patterns)
