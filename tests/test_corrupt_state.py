"""Corrupt or mismatched state on disk: a clear error at start-up and on reload, and the
index (on disk and serving) left as it was."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asgi_serving import serving
from pydantic import SecretStr

from service.api.app import StartupError, create_app
from service.config.routes import load_route_set
from service.config.settings import Settings
from service.index import store as index_module
from service.index.store import MANIFEST, build_index

ADMIN = {"Authorization": "Bearer admin-key"}


def vector_file(index_dir: Path) -> Path:
    return next(index_dir.glob("*.faiss"))


def truncate_vectors(index_dir: Path) -> None:
    path = vector_file(index_dir)
    path.write_bytes(path.read_bytes()[:100])


def manifest_of_another_model(index_dir: Path) -> None:
    manifest = json.loads((index_dir / MANIFEST).read_text())
    manifest["embedding_model"] = "sentence-transformers/some-other-model"
    (index_dir / MANIFEST).write_text(json.dumps(manifest))


def delete_vectors(index_dir: Path) -> None:
    vector_file(index_dir).unlink()


def delete_manifest(index_dir: Path) -> None:
    (index_dir / MANIFEST).unlink()


def garble_manifest(index_dir: Path) -> None:
    (index_dir / MANIFEST).write_text('{"fingerprint": ')


class EightDimensions:
    """An encoder of the configured model id whose vectors have another dimension."""

    def __init__(self, model_id: str):
        self.model_id, self.dimension = model_id, 8

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> Any:
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(len(texts), 8)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


Damage = Callable[[Path], None]
DAMAGES: dict[str, Damage] = {
    "truncated vector file": truncate_vectors,
    "manifest of another model": manifest_of_another_model,
    "missing vector file": delete_vectors,
    "missing manifest": delete_manifest,
    "unreadable manifest": garble_manifest,
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_damaged_index_stops_start_up_with_the_fix(settings: Settings, damage: Damage) -> None:
    damage(settings.index_dir)
    with pytest.raises(StartupError) as error:
        create_app(settings)
    assert "build_index.py" in str(error.value)


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
async def test_damaged_index_fails_the_reload_and_the_old_one_keeps_serving(
    settings: Settings, encoder: Any, damage: Damage
) -> None:
    settings = settings.model_copy(update={"admin_key": SecretStr("admin-key")})
    app = create_app(settings, encoder=encoder)
    async with serving(app, **ADMIN) as client:
        engine = app.state.engine
        damage(settings.index_dir)

        response = await client.post("/admin/reload")

        assert response.status_code == 409, response.text
        assert response.json()["error"]["type"] == "reload_failed"
        assert "build_index.py" in response.json()["error"]["message"]
        assert app.state.engine is engine
        routed = await client.post("/route", json={"prompt": "hello there", "tiebreak": False})
        assert routed.status_code == 200
        assert routed.json()["index_fingerprint"] == engine.index.fingerprint


async def test_index_of_another_dimension_fails_the_reload(
    settings: Settings, encoder: Any
) -> None:
    settings = settings.model_copy(update={"admin_key": SecretStr("admin-key")})
    app = create_app(settings, encoder=encoder)
    async with serving(app, **ADMIN) as client:
        engine = app.state.engine
        route_set = load_route_set(settings.routes_dir)
        build_index(route_set, EightDimensions(settings.embedding_model), settings.index_dir)

        response = await client.post("/admin/reload")

        assert response.status_code == 409, response.text
        message = response.json()["error"]["message"]
        assert "8-d" in message and "build_index.py" in message
        assert app.state.engine is engine


async def test_interrupted_build_leaves_the_serving_index_reloadable(
    settings: Settings, encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings.model_copy(update={"admin_key": SecretStr("admin-key")})
    app = create_app(settings, encoder=encoder)
    async with serving(app, **ADMIN) as client:
        fingerprint = app.state.engine.index.fingerprint
        files = sorted(p.name for p in settings.index_dir.iterdir())

        def interrupted(*args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(index_module, "_write_json_atomically", interrupted)
        with pytest.raises(KeyboardInterrupt):
            build_index(load_route_set(settings.routes_dir), encoder, settings.index_dir)
        monkeypatch.undo()

        assert sorted(p.name for p in settings.index_dir.iterdir()) == files
        response = await client.post("/admin/reload")
        assert response.status_code == 200, response.text
        assert response.json()["index_fingerprint"] == fingerprint
