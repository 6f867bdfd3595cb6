"""Install the bench's comparison, semantic-router, into a folder of its own beside .venv.

    python scripts/bench_deps.py                      # .bench-deps/semantic-router, 1.1.1

semantic-router pins ``openai<3``, older than the one litellm needs, so it cannot live in the
project's virtualenv. It is installed with ``pip install --target`` into a fresh folder,
resolved against the versions this interpreter already has (each installed distribution is a
constraint, except openai); then every distribution this interpreter already holds at the same
version is removed from the folder. What is left (semantic-router, its older openai, the
provider SDKs it imports) goes first on the comparison server's path only, so it cannot change
what .venv runs, and cannot shadow a compiled package of .venv with another build. The folder
is replaced whole once the import works, so a failed install leaves the previous one.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TARGET = ROOT / ".bench-deps" / "semantic-router"
DEFAULT_VERSION = "1.1.1"
FREE = {"openai", "semroute", "semantic-router"}
"""Left unconstrained: the one semantic-router needs older, and the packages being compared."""


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_here() -> dict[str, str]:
    """Distribution name -> version, as this interpreter (the project's .venv) sees them."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical(name), dist.version)
    return found


def constraints(installed: dict[str, str]) -> str:
    return "".join(
        f"{name}=={version}\n" for name, version in sorted(installed.items()) if name not in FREE
    )


def prune(folder: Path, installed: dict[str, str]) -> list[str]:
    """Remove from ``folder`` each distribution installed here at the same version."""
    removed = []
    for dist in metadata.distributions(path=[str(folder)]):
        name = canonical(dist.metadata["Name"] or "")
        if installed.get(name) != dist.version or name in FREE:
            continue
        for file in dist.files or []:  # RECORD lists the dist-info files too
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_relative_to(folder.resolve()) and path.is_file():
                path.unlink()
        removed.append(f"{name}=={dist.version}")
    for empty in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    return removed


def importable(folder: Path) -> subprocess.CompletedProcess[str]:
    probe = "import semantic_router, openai; print(semantic_router.__version__, openai.__version__)"
    env = {"PYTHONPATH": f"{folder}:{ROOT}", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--version", default=DEFAULT_VERSION)
    args = parser.parse_args(argv)
    installed = installed_here()
    args.target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.target.parent, prefix=".installing-") as work:
        fresh = Path(work) / "packages"
        pins = Path(work) / "constraints.txt"
        pins.write_text(constraints(installed), encoding="utf-8")
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        command += ["--no-warn-conflicts", "--target", str(fresh), "--constraint", str(pins)]
        subprocess.run([*command, f"semantic-router=={args.version}"], check=True)
        removed = prune(fresh, installed)
        probe = importable(fresh)
        if probe.returncode != 0:
            print(f"semantic-router does not import:\n{probe.stderr[-2000:]}", file=sys.stderr)
            return 1
        shutil.rmtree(args.target, ignore_errors=True)
        fresh.rename(args.target)
    kept = sorted(
        f"{canonical(d.metadata['Name'] or '')}=={d.version}"
        for d in metadata.distributions(path=[str(args.target)])
    )
    print(f"semantic-router, openai: {probe.stdout.strip()} in {args.target}")
    print(
        f"kept {len(kept)} distributions .venv lacks or has at another version; "
        f"removed {len(removed)} that .venv already has"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
