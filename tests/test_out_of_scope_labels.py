"""Route loading and evaluation agree on which labels mean "no route fits"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SMALL_ROUTER, SMALL_ROUTES, WriteRoutes

from service.config.routes import RouteSetError, load_route_set
from service.tools.evaluation import read_examples

LABELS = ["oos", "None", "", "out_of_scope", "NO_ROUTE"]


@pytest.mark.parametrize("label", LABELS)
def test_calibration_and_evaluation_read_the_same_labels_as_out_of_scope(
    label: str, tmp_path: Path, write_routes: WriteRoutes
) -> None:
    line = json.dumps({"text": "what is the capital of peru", "label": label}) + "\n"
    folder = write_routes(tmp_path / "routes", SMALL_ROUTES, SMALL_ROUTER)
    (folder / "calibration.jsonl").write_text(line, encoding="utf-8")
    (tmp_path / "eval.jsonl").write_text(line, encoding="utf-8")

    assert load_route_set(folder).calibration == (("what is the capital of peru", None),)
    assert read_examples(tmp_path / "eval.jsonl")[0].label is None


@pytest.mark.parametrize("name", ["oos", "out_of_scope", "no_route"])
def test_a_route_may_not_be_named_like_an_out_of_scope_label(
    name: str, tmp_path: Path, write_routes: WriteRoutes
) -> None:
    routes = {**SMALL_ROUTES, name: {**SMALL_ROUTES["cooking"], "name": name}}
    with pytest.raises(RouteSetError, match="is reserved"):
        load_route_set(write_routes(tmp_path / "routes", routes, SMALL_ROUTER))
