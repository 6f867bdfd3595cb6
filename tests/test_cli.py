"""``scripts/build_index.py`` as a user runs it: build, check, and refuse broken route folders."""

import copy
import shutil
from pathlib import Path

from conftest import SMALL_ROUTER, SMALL_ROUTES, CliBuild, WriteRoutes, run_build_script

from service.index.store import MANIFEST, load_index, read_manifest


def test_build_writes_the_index_and_prints_a_summary_per_route(cli_build: CliBuild) -> None:
    result = cli_build.result

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["route", "utterances"]
    assert [line.split() for line in lines[1:4]] == [
        ["coding", "6"],
        ["cooking", "6"],
        ["greetings", "5"],
    ]
    manifest = read_manifest(cli_build.index)
    assert "17 vectors of dimension 512" in lines[-1]
    assert manifest["fingerprint"][:12] in lines[-1]
    assert load_index(cli_build.index).route_names == ("coding", "cooking", "greetings")


def test_check_of_a_current_index_exits_0(cli_build: CliBuild) -> None:
    result = run_build_script("--routes", cli_build.routes, "--index", cli_build.index, "--check")

    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert "17 vectors" in result.stdout


def test_check_of_a_missing_index_exits_1_saying_how_to_build_it(
    cli_build: CliBuild, tmp_path: Path
) -> None:
    result = run_build_script(
        "--routes", cli_build.routes, "--index", tmp_path / "no-index", "--check"
    )

    assert result.returncode == 1
    assert "no index" in result.stderr
    assert "scripts/build_index.py" in result.stderr
    assert not (tmp_path / "no-index").exists(), "--check never writes"


def test_check_of_a_stale_index_exits_1_saying_how_to_rebuild_it(
    cli_build: CliBuild, tmp_path: Path, write_routes: WriteRoutes
) -> None:
    routes = copy.deepcopy(SMALL_ROUTES)
    routes["cooking"]["utterances"].append("how do I caramelise onions")
    edited = write_routes(tmp_path / "routes", routes, SMALL_ROUTER)
    index = Path(shutil.copytree(cli_build.index, tmp_path / "index"))
    before = (index / MANIFEST).read_bytes()

    result = run_build_script("--routes", edited, "--index", index, "--check")

    assert result.returncode == 1
    assert "stale" in result.stderr
    assert "scripts/build_index.py" in result.stderr
    assert (index / MANIFEST).read_bytes() == before


def test_invalid_route_folder_exits_2_naming_the_file(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    routes = copy.deepcopy(SMALL_ROUTES)
    del routes["coding"]["utterances"]
    folder = write_routes(tmp_path / "routes", routes, SMALL_ROUTER)

    result = run_build_script("--routes", folder, "--index", tmp_path / "index")

    assert result.returncode == 2
    assert "coding.yaml: utterances: is required" in result.stderr
    assert not (tmp_path / "index").exists()
