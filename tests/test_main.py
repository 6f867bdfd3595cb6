"""``python -m service``: refuses to start on a broken set-up, splits the cores between workers."""

from concurrent.futures import Future
from typing import Any

import pytest

from service import __main__ as entry
from service.api import app as app_module
from service.api.engine import StartupError


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """uvicorn.run replaced by a recorder; the set-up check always passes (and one worker's
    app is a placeholder).

    ``main`` writes SEMROUTE_ENCODER_THREADS into the environment. ``delenv`` of an unset
    variable records nothing to undo, so it is set first: monkeypatch then restores the
    variable as it was (unset, or its value) when the test ends."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(app_module, "load_state", lambda settings: None)
    monkeypatch.setattr(app_module, "create_app", lambda settings, loaded, **encoders: "app")
    monkeypatch.setattr(entry.encoders, "start_loading", lambda settings: None)
    monkeypatch.setattr(
        entry.uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs})
    )
    monkeypatch.setenv("SEMROUTE_ENCODER_THREADS", "placeholder")
    monkeypatch.delenv("SEMROUTE_ENCODER_THREADS")
    monkeypatch.setattr(entry.os, "cpu_count", lambda: 4)
    return calls


def test_workers_share_the_cores_between_their_encoders(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert entry.main(["--workers", "2", "--port", "8123"]) == 0

    assert started[0]["workers"] == 2 and started[0]["port"] == 8123
    assert entry.os.environ["SEMROUTE_ENCODER_THREADS"] == "2"


def test_an_explicit_thread_count_is_kept(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMROUTE_ENCODER_THREADS", "3")

    entry.main(["--workers", "4"])

    assert entry.os.environ["SEMROUTE_ENCODER_THREADS"] == "3"


def test_one_worker_leaves_the_thread_count_to_onnx_runtime(
    started: list[dict[str, Any]],
) -> None:
    entry.main([])

    assert started[0]["workers"] == 1
    assert "SEMROUTE_ENCODER_THREADS" not in entry.os.environ


def test_one_worker_serves_the_set_up_it_checked(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = object()
    monkeypatch.setattr(app_module, "load_state", lambda settings: checked)
    monkeypatch.setattr(
        app_module, "create_app", lambda settings, loaded, **encoders: ("app of", loaded)
    )

    entry.main([])

    assert started[0]["app"] == ("app of", checked)


def test_several_workers_each_build_their_app_from_the_environment(
    started: list[dict[str, Any]],
) -> None:
    entry.main(["--workers", "2"])

    assert started[0]["app"] == "service.api.app:create_app_from_env"
    assert started[0]["factory"] is True


def test_a_broken_setup_exits_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(settings: Any) -> None:
        raise StartupError("no index in index/; build it with: python scripts/build_index.py")

    monkeypatch.setattr(app_module, "load_state", refuse)

    assert entry.main([]) == 2
    assert "python scripts/build_index.py" in capsys.readouterr().err


def test_one_worker_hands_the_encoders_it_loaded_early_to_the_app(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: Future[tuple[str, str]] = Future()
    loaded.set_result(("primary", "wide"))
    monkeypatch.setattr(entry.encoders, "start_loading", lambda settings: loaded)
    monkeypatch.setattr(
        app_module,
        "create_app",
        lambda settings, loaded, encoder, wide_encoder: (encoder, wide_encoder),
    )

    entry.main([])

    assert started[0]["app"] == ("primary", "wide")


def test_encoders_that_failed_to_load_early_are_left_to_the_app_to_load() -> None:
    failed: Future[tuple[str, str]] = Future()
    failed.set_exception(OSError("model file missing"))

    assert entry._loaded_encoders(failed) == (None, None)  # type: ignore[arg-type]


def test_loading_the_wide_encoder_loads_the_language_identifier_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The identifier's second of loading belongs to the encoder thread, not to the first
    Latin-script prompt the started service decides (its warm-up)."""
    from service.api import encoders
    from service.config.settings import Settings
    from service.encoding import scripts

    wide = object()
    monkeypatch.setattr(encoders, "load_wide_encoder", lambda *args, **kwargs: wide)
    monkeypatch.setattr(scripts, "_identifier", None)

    assert encoders.load_wide(Settings()) is wide
    assert scripts._identifier is not None
    assert scripts._identifier.classify("habari ya asubuhi rafiki yangu")[0] == "sw"


def test_without_a_wide_encoder_the_language_identifier_is_not_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from service.api import encoders
    from service.config.settings import Settings
    from service.encoding import scripts

    monkeypatch.setattr(encoders, "load_wide_encoder", lambda *args, **kwargs: None)
    monkeypatch.setattr(scripts, "_identifier", None)

    assert encoders.load_wide(Settings()) is None
    assert scripts._identifier is None
