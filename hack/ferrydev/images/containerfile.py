"""The top-level Containerfile (for registries' CI, `docker build` / `podman build` /
`buildah`) held in step with the tools image that `ferrydev.images.tools` builds without them.

Compared, instruction by instruction: the Debian suite of the base image, the apt packages,
the venv's path, the pip install of Ferry's dependencies (exactly pyproject.toml's
dependencies and build requirements), the copy of Ferry's sources (exactly
tools.FERRY_SOURCES) and its `--no-deps` install, the launcher's Go version
(operator/launcher/go.mod) and destination, the ferry user (1000, /home/ferry), and the
image config: ENV, WORKDIR, USER and CMD equal to tools.TOOLS_CONFIG.

`build_tools` refuses to build while they differ, and tests/unit/test_containerfile.py checks
the committed file and that altered copies are caught.

Owns: parsing a Containerfile (comments, line continuations, JSON and shell forms) and listing
where it differs from the Python builder. Must not: build anything.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ferrydev.images import tools
from ferrydev.paths import ROOT

CONTAINERFILE = ROOT / "Containerfile"
LAUNCHER_GO_MOD = ROOT / "operator" / "launcher" / "go.mod"
LAUNCHER_PATH = "/usr/local/bin/ferry-launch"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: str  # the stage it belongs to ("" before any FROM ... AS)


def parse(text: str) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    stage, pending = "", ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            stage = words[2] if len(words) == 3 and words[1].upper() == "AS" else "final"
        out.append(Instruction(keyword, args, stage))
    return out


def _env(args: str) -> list[str]:
    return [w for w in shlex.split(args) if "=" in w]


def _runs(instructions: list[Instruction]) -> list[list[str]]:
    """Each RUN of the final stage split into its `&&`-joined commands (shell words)."""
    commands: list[list[str]] = []
    for ins in instructions:
        if ins.keyword == "RUN" and ins.stage == "final":
            for part in re.split(r"\s*&&\s*", ins.args):
                commands.append(shlex.split(part))
    return commands


def _expected_requirements() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]


def mismatches(text: str) -> list[str]:
    """Where the Containerfile and the Python builder of the tools image disagree."""
    problems: list[str] = []
    instructions = parse(text)
    final = [i for i in instructions if i.stage == "final"]
    froms = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    if not final or not froms:
        return ["no final stage (FROM without AS)"]
    base = final[0].args.split()[0]
    if not re.fullmatch(rf"docker\.io/library/debian:{tools.DEBIAN_SUITE}(-slim)?", base):
        problems.append(f"base {base}: the tools image is Debian {tools.DEBIAN_SUITE}")
    go_line = re.search(r"^go (\S+)$", LAUNCHER_GO_MOD.read_text(), re.M)
    go = go_line.group(1) if go_line else "?"
    if f"docker.io/library/golang:{go}-{tools.DEBIAN_SUITE}" not in froms:
        problems.append(f"the launcher stage is not golang:{go}-{tools.DEBIAN_SUITE}")

    runs = _runs(instructions)
    venv = str(tools.VENV)
    pip = f"{venv}/bin/pip"
    apt = [c for c in runs if c[:2] == ["apt-get", "install"]]
    packages = sorted(w for c in apt for w in c[2:] if not w.startswith("-"))
    if packages != sorted(tools.TOOLS_PACKAGES):
        problems.append(f"apt packages {packages} != {sorted(tools.TOOLS_PACKAGES)}")
    if ["python3", "-m", "venv", venv] not in runs:
        problems.append(f"no `python3 -m venv {venv}`")
    installs = [c for c in runs if c[:2] == [pip, "install"]]
    deps = [c for c in installs if "--no-deps" not in c]
    wanted = _expected_requirements()
    if len(deps) != 1 or [w for w in deps[0][2:] if not w.startswith("-")] != wanted:
        problems.append(f"the dependencies' pip install is not exactly {wanted}")
    own = [c for c in installs if "--no-deps" in c]
    if len(own) != 1 or own[0][-1] != "/tmp/ferry-src":  # noqa: S108 - inside the image
        problems.append("no `pip install --no-deps ... /tmp/ferry-src` of Ferry itself")
    copies = [shlex.split(i.args) for i in final if i.keyword == "COPY"]
    copied = sorted(
        src.rstrip("/") for c in copies if not c[0].startswith("--from") for src in c[:-1]
    )
    if copied != sorted(tools.FERRY_SOURCES):
        problems.append(f"COPY of {copied}, not of {sorted(tools.FERRY_SOURCES)}")
    if not any(c[0].startswith("--from=") and c[-1] == LAUNCHER_PATH for c in copies):
        problems.append(f"the launcher is not copied to {LAUNCHER_PATH}")
    useradd = [dict(zip(c[1::2], c[2::2], strict=False)) for c in runs if c[:1] == ["useradd"]]
    if not useradd or (useradd[0].get("-u"), useradd[0].get("-d")) != ("1000", "/home/ferry"):
        problems.append("no `useradd -u 1000 ... -d /home/ferry` (the ferry user)")

    config = tools.TOOLS_CONFIG
    env = [w for i in final if i.keyword == "ENV" for w in _env(i.args)]
    if sorted(env) != sorted(config.env):
        problems.append(f"ENV {sorted(env)} != {sorted(config.env)}")
    last = {i.keyword: i.args for i in final}
    if last.get("WORKDIR") != config.workdir:
        problems.append(f"WORKDIR {last.get('WORKDIR')} != {config.workdir}")
    if last.get("USER") != config.user:
        problems.append(f"USER {last.get('USER')} != {config.user}")
    try:
        cmd = json.loads(last.get("CMD", "null"))
    except json.JSONDecodeError:
        cmd = last.get("CMD")
    if cmd != config.cmd:
        problems.append(f"CMD {cmd} != {config.cmd}")
    entrypoint = last.get("ENTRYPOINT")
    if (json.loads(entrypoint) if entrypoint else []) != config.entrypoint:
        problems.append(f"ENTRYPOINT {entrypoint} != {config.entrypoint}")
    return problems


def check(path: Path = CONTAINERFILE) -> None:
    """Raise ImageError when the Containerfile has drifted from the Python builder."""
    from ferrydev.images.common import ImageError

    problems = mismatches(path.read_text())
    if problems:
        raise ImageError(f"{path} differs from ferrydev.images.tools: " + "; ".join(problems))
