"""The wide path: prompts in scripts the default encoder does not cover are routed by a second
encoder (multilingual-e5) and the classifier fitted on its vectors; an index built with one
wide encoder (or none) is never served with another.

The rest of the suite runs with the wide encoder off (tests/conftest.py); this module builds
its own small indexes with it on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SMALL_ROUTES, count_embedded, write_route_folder
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.routing_api import route_info
from service.config.routes import load_route_set
from service.config.settings import WIDE_MODEL, Settings
from service.encoding.e5 import E5Encoder, clip_to_tokens
from service.encoding.encoder import BaseEncoder, EncoderError
from service.encoding.scripts import Reading, reading
from service.index.classifier import softmax
from service.index.store import (
    IndexCorruptError,
    IndexStaleError,
    build_index,
    check_index,
    load_index,
    wide_rows,
)
from service.routing import semantic
from service.routing.scoring import Abstain
from service.routing.semantic import BOTH_PRIMARY_SHARE, SemanticStage

DATA = Path(__file__).resolve().parent / "data" / "multilingual_math.jsonl"
# Languages of the evaluation file in scripts the default encoder was not trained on, and
# Vietnamese, which its tone marks show.
WIDE_LANGUAGES = {"bn", "te", "hi", "kn", "ta", "vi"}

MATH_ROUTE = {
    "description": "Arithmetic and word problems.",
    "model": "openai/gpt-4.1-mini",
    "utterances": [
        "a train travels 60 km per hour, how far does it go in 3 hours",
        "Maria has 12 apples and gives away 5, how many are left",
        "a shirt costs 15 dollars, how much do 4 shirts cost",
        "what is 25 percent of 80",
        "a rectangle is 8 m long and 5 m wide, what is its area",
        "Tom saves 10 dollars a week, how many weeks to save 70 dollars",
    ],
}
ROUTER = {"default_route": "greetings", "scoring": "classifier"}
BENGALI_MATH = (
    "রিনার কাছে ২৪টি পেন্সিল আছে। সে তার তিন বন্ধুকে সমান ভাগে ভাগ করে দিল। প্রত্যেক বন্ধু কয়টি পেন্সিল পেল?"
)
TELUGU_MATH = "ఒక బస్సు గంటకు 50 కిలోమీటర్ల వేగంతో ప్రయాణిస్తుంది. 4 గంటల్లో అది ఎంత దూరం ప్రయాణిస్తుంది?"
BENGALI_RECIPE = "ডিম ছাড়া কেক বানানোর একটি রেসিপি দাও।"
CZECH_MATH = "Vlak jede rychlostí 60 kilometrů za hodinu. Jak daleko dojede za tři hodiny?"


def _rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]


# -- which prompts take the wide path -------------------------------------------------------------


@pytest.mark.parametrize("row", _rows(), ids=lambda row: f"{row['lang']}-{row['text'][:12]}")
def test_a_prompt_is_read_by_its_script_and_language(row: dict[str, str]) -> None:
    how = reading(row["text"])
    letters = [char for char in row["text"] if char.isalpha()]
    latin_only = all(char < "\u0250" for char in letters)
    if row["lang"] in WIDE_LANGUAGES:
        assert how is Reading.WIDE
    elif row["lang"] == "sw":  # a Latin-script language the default encoder lacks
        assert how is Reading.BOTH
    elif latin_only and len(letters) < 20:
        assert how is Reading.PRIMARY  # a greeting too short to tell its language
    else:
        assert how is Reading.CHECKED


@pytest.mark.parametrize(
    "text",
    [
        "write a python function that parses ISO dates",
        "Translate 'আমি ভাত খাই' into English",  # a quoted phrase does not move the prompt
        "For the given proverb in English, give a Russian one: No room to swing a cat. "
        "choice: Негде яблоку упасть",
        "Can you give me a recipe for crème brûlée for four people?",
        "What does 你好 mean in English?",
        "Ahoj, jak se máš?",  # too few letters to tell the language
        "Find $|9i-12|\\cdot |3+4i|$.",
        "12 + 35 = ?",
        "",
    ],
)
def test_english_and_prompts_too_short_to_tell_keep_the_fast_path(text: str) -> None:
    assert reading(text) is Reading.PRIMARY


@pytest.mark.parametrize(
    "text", ["Γράψε ένα ποίημα για τη θάλασσα", "כתוב שיר על הים", "ზღვაზე ლექსი დაწერე"]
)
def test_scripts_of_no_covered_language_take_the_wide_path(text: str) -> None:
    assert reading(text) is Reading.WIDE


@pytest.mark.parametrize(
    "text",
    [
        CZECH_MATH,
        "Napiš mi krátkou povídku o drakovi, který se bojí létat.",  # Czech
        "Scrie o poezie despre mare și despre vântul de toamnă.",  # Romanian
        "Skriv en kort dikt om havet och sommarvinden, tack.",  # Swedish
        "Andika hadithi fupi kuhusu simba na panya wadogo.",  # Swahili, ASCII only
    ],
)
def test_latin_languages_the_default_encoder_lacks_are_read_by_both(text: str) -> None:
    assert reading(text) is Reading.BOTH


@pytest.mark.parametrize(
    "text",
    [
        "Escribe un poema corto sobre el mar y el viento del verano.",
        "Schreibe ein kurzes Gedicht über das Meer und den Sommerwind.",
        "Explique-moi pourquoi le ciel est bleu",  # ASCII only
        "Как приготовить борщ?",
        "مرحبا، كيف حالك؟",
        "안녕하세요, 오늘 날씨 어때요?",
        "请用Python写一个快速排序",
        # mostly LaTeX, which the identifier would put down to a Latin-script language
        "已知 $\\boldsymbol{a}, \\boldsymbol{b}$ 为单位向量, 且 $\\boldsymbol{a} \\cdot "
        "\\boldsymbol{b}=0$",
    ],
)
def test_other_languages_the_default_encoder_knows_are_checked(text: str) -> None:
    assert reading(text) is Reading.CHECKED


# -- the encoder ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide_encoder() -> BaseEncoder:
    return E5Encoder()


def test_wide_encoder_gives_unit_vectors_that_match_translations(
    wide_encoder: BaseEncoder,
) -> None:
    vectors = wide_encoder.encode([BENGALI_MATH, TELUGU_MATH, "write a poem about the sea"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    english = wide_encoder.encode(["Rina shares 24 pencils equally among her three friends"])[0]
    assert vectors[0] @ english > vectors[2] @ english


def test_long_prompts_keep_head_and_tail_within_the_token_budget(
    wide_encoder: E5Encoder,
) -> None:
    long = " ".join([BENGALI_MATH] * 6) + " শেষ প্রশ্ন: মোট কত?"
    clipped = wide_encoder.clip(long)

    assert wide_encoder.token_count(long) > wide_encoder.max_tokens
    assert wide_encoder.token_count(clipped) <= wide_encoder.max_tokens
    assert clipped.startswith(BENGALI_MATH[:20]) and clipped.endswith("মোট কত?")
    assert wide_encoder.clip(clipped) == clipped  # cache keys embed as themselves
    assert wide_encoder.clip(BENGALI_MATH) == BENGALI_MATH


def test_a_cached_prompt_is_looked_up_without_counting_its_tokens(
    wide_encoder: E5Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    long = " ".join([BENGALI_MATH] * 40) + " শেষ প্রশ্ন: মোট কত?"
    vectors: dict[str, np.ndarray] = {}
    counted: list[str] = []
    real_count = wide_encoder.token_count

    def counting(text: str) -> int:
        counted.append(text)
        return real_count(text)

    monkeypatch.setattr(wide_encoder, "token_count", counting)

    class Store:
        def get(self, key: str) -> np.ndarray | None:
            return vectors.get(key)

        def put(self, key: str, value: np.ndarray) -> None:
            vectors[key] = value

    first = wide_encoder.encode_cached([long, BENGALI_MATH], cache=Store())
    assert counted  # a miss clips to the token budget
    assert len(wide_encoder.cache_key(long)) < len(long)  # keys stay bounded in size
    counted.clear()
    again = wide_encoder.encode_cached([long, BENGALI_MATH], cache=Store())

    assert counted == []
    assert np.array_equal(first, again)
    # The key's vector is that of the token-clipped text, as an uncached encode gives it.
    assert np.allclose(first, wide_encoder.encode([long, BENGALI_MATH]), atol=1e-6)


def test_token_clipping_shrinks_until_the_count_fits() -> None:
    def count(text: str) -> int:  # a counter with uneven characters per token
        return len(text.split()) + text.count("x")

    text = " ".join(["word"] * 50 + ["xxxx"] * 50)
    clipped = clip_to_tokens(text, 40, count)

    assert count(clipped) <= 40 and clipped.startswith("word") and clipped.endswith("xxxx")
    assert clip_to_tokens("two words", 40, count) == "two words"


def test_wide_encoder_refuses_another_model() -> None:
    with pytest.raises(EncoderError, match=WIDE_MODEL):
        E5Encoder("intfloat/multilingual-e5-large")


# -- build, check, route --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide_build(
    encoder: BaseEncoder, wide_encoder: BaseEncoder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """Small routes plus a math route, indexed with the wide encoder on (built once)."""
    base = tmp_path_factory.mktemp("wide")
    routes = write_route_folder(base / "routes", {**SMALL_ROUTES, "math": MATH_ROUTE}, ROUTER)
    build_index(load_route_set(routes), encoder, base / "index", wide_encoder=wide_encoder)
    return routes, base / "index"


def test_a_rebuild_takes_the_wide_vectors_from_the_cache(
    encoder: BaseEncoder,
    wide_encoder: E5Encoder,
    wide_build: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routes, index_dir = wide_build
    shutil.copytree(index_dir, tmp_path / "index")
    embedded = count_embedded(wide_encoder, monkeypatch)
    build_index(load_route_set(routes), encoder, tmp_path / "index", wide_encoder=wide_encoder)

    assert embedded == []
    rebuilt, first = load_index(tmp_path / "index").wide, load_index(index_dir).wide
    assert rebuilt is not None and first is not None
    assert np.array_equal(rebuilt.model.centroids, first.model.centroids)


def test_build_records_the_wide_encoder_and_its_classifier(wide_build: tuple[Path, Path]) -> None:
    routes, index_dir = wide_build
    manifest = check_index(
        index_dir, load_route_set(routes), "use-multilingual-v3-int8", WIDE_MODEL
    )
    assert manifest["wide_encoder"]["model"] == WIDE_MODEL
    loaded = load_index(index_dir)
    assert loaded.wide is not None
    assert loaded.wide.model.centroids.shape == (len(loaded.route_names), 384)


def test_wide_classifier_learns_from_an_even_spread_of_each_large_route() -> None:
    labels = np.array([0] * 250 + [1] * 7)
    rows = wide_rows(labels, per_route=100)
    assert (labels[rows] == 0).sum() == 100
    assert (labels[rows] == 1).sum() == 7  # a small route keeps every utterance
    assert {0, 249} <= set(rows.tolist())  # spread over the whole list, not its head


GREEK_RECIPES = [
    "δώσε μου μια συνταγή για μουσακά",
    "πώς φτιάχνω τζατζίκι στο σπίτι",
    "πόση ώρα ψήνεται ένα αρνί στον φούρνο",
    "τι μπαχαρικά βάζω στο παστίτσιο",
]
GREEK_RECIPE = "πώς μαγειρεύω φασολάδα με ντομάτα"


def test_wide_only_utterances_teach_the_wide_classifier_and_nothing_else(
    wide_build: tuple[Path, Path],
    encoder: BaseEncoder,
    wide_encoder: BaseEncoder,
    tmp_path: Path,
) -> None:
    routes, index_dir = wide_build
    greek = {**SMALL_ROUTES["cooking"], "wide_utterances": GREEK_RECIPES}
    folder = write_route_folder(
        tmp_path / "routes", {**SMALL_ROUTES, "cooking": greek, "math": MATH_ROUTE}, ROUTER
    )
    manifest = build_index(
        load_route_set(folder), encoder, tmp_path / "index", wide_encoder=wide_encoder
    )
    before, after = load_index(index_dir), load_index(tmp_path / "index")

    assert manifest["wide_encoder"]["wide_only_utterances"] == {"cooking": 4}
    route_set = load_route_set(folder)
    listed = route_info(route_set, route_set.routes[1])  # what GET /routes shows of cooking
    assert (listed.name, listed.utterances, listed.wide_utterances) == ("cooking", 6, 4)
    assert after.utterances == before.utterances  # not searched, not in the primary classifier
    assert after.faiss_index.ntotal == before.faiss_index.ntotal
    assert before.model is not None and after.model is not None
    for name, array in before.model.to_arrays().items():
        assert np.array_equal(array, after.model.to_arrays()[name]), name
    stages = [
        SemanticStage(load_route_set(routes), before, encoder, wide_encoder=wide_encoder),
        SemanticStage(load_route_set(folder), after, encoder, wide_encoder=wide_encoder),
    ]
    try:
        english = [stage.score_many(["what spices go in a chicken curry"])[0] for stage in stages]
        assert np.array_equal(english[0].ranked.scores, english[1].ranked.scores)
        cooking = [
            _route_probability(stage, stage.score_many([GREEK_RECIPE])[0], "cooking")
            for stage in stages
        ]
    finally:
        for stage in stages:
            stage.close()
    assert reading(GREEK_RECIPE) is Reading.WIDE
    assert cooking[1] > cooking[0] + 0.1  # 0.63 -> 0.78 when written


def _route_probability(stage: SemanticStage, result: semantic.SemanticResult, name: str) -> float:
    position = stage.index.route_names.index(name)
    ranked = dict(zip(result.ranked.positions.tolist(), result.ranked.scores.tolist(), strict=True))
    return float(ranked.get(position, 0.0))


@pytest.fixture
def wide_stage(
    wide_build: tuple[Path, Path], encoder: BaseEncoder, wide_encoder: BaseEncoder
) -> Iterator[SemanticStage]:
    routes, index_dir = wide_build
    stage = SemanticStage(
        load_route_set(routes), load_index(index_dir), encoder, wide_encoder=wide_encoder
    )
    yield stage
    stage.close()


def test_wide_path_routes_bengali_and_telugu_math_to_math(wide_stage: SemanticStage) -> None:
    stage = wide_stage
    results = stage.score_many([BENGALI_MATH, TELUGU_MATH, BENGALI_RECIPE])
    routed = [stage.index.route_names[int(r.ranked.positions[0])] for r in results]
    single = stage.score_prompt(TELUGU_MATH)
    assert routed == ["math", "math", "cooking"]
    assert stage.index.route_names[int(single.ranked.positions[0])] == "math"


def test_a_prompt_read_by_both_encoders_averages_both_classifiers(
    wide_stage: SemanticStage, encoder: BaseEncoder, wide_encoder: BaseEncoder
) -> None:
    stage = wide_stage
    [result] = stage.score_many([CZECH_MATH])
    index = stage.index
    assert index.model is not None and index.wide is not None
    primary, _ = index.model.raw_scores(encoder.encode([CZECH_MATH]), [CZECH_MATH])
    wide, _ = index.wide.model.raw_scores(wide_encoder.encode([CZECH_MATH]), [CZECH_MATH])
    mixed = BOTH_PRIMARY_SHARE * softmax(primary) + (1 - BOTH_PRIMARY_SHARE) * softmax(wide)
    routes = mixed[0, : len(index.route_names)]
    expected = index.route_names[int(np.argmax(routes))]

    assert index.route_names[int(result.ranked.positions[0])] == expected == "math"
    # The blend, not either classifier alone, gives the ranked probabilities (no neighbour
    # vote on the wide path).
    assert np.allclose(result.ranked.scores, np.sort(routes / routes.sum())[::-1], atol=1e-6)


def test_a_prompt_in_a_known_language_asks_the_wide_encoder_only_when_unsure(
    wide_stage: SemanticStage,
    encoder: BaseEncoder,
    wide_encoder: BaseEncoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage, index = wide_stage, wide_stage.index
    german = "Ein Zug fährt 80 Kilometer pro Stunde. Wie weit kommt er in drei Stunden?"
    assert reading(german) is Reading.CHECKED
    embedded = count_embedded(wide_encoder, monkeypatch)

    monkeypatch.setattr(semantic, "SECOND_OPINION_BELOW", 0.0)  # every decision is sure
    [alone] = stage.score_many([german])
    assert german not in embedded
    assert alone.confidence is not None

    monkeypatch.setattr(semantic, "SECOND_OPINION_BELOW", 1.01)  # every decision is unsure
    [checked] = stage.score_many([german])
    assert embedded == [german]
    assert index.model is not None and index.wide is not None
    primary, _ = index.model.raw_scores(encoder.encode([german]), [german])
    wide, _ = index.wide.model.raw_scores(wide_encoder.encode([german]), [german])
    mixed = BOTH_PRIMARY_SHARE * softmax(primary) + (1 - BOTH_PRIMARY_SHARE) * softmax(wide)
    routes = mixed[0, : len(index.route_names)]
    assert np.allclose(checked.ranked.scores, np.sort(routes / routes.sum())[::-1], atol=1e-6)
    assert index.route_names[int(checked.ranked.positions[0])] == "math"


def test_a_no_route_verdict_gets_no_second_opinion(
    wide_stage: SemanticStage, wide_encoder: BaseEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    german = "Ein Zug fährt 80 Kilometer pro Stunde. Wie weit kommt er in drei Stunden?"
    monkeypatch.setattr(semantic, "SECOND_OPINION_BELOW", 1.01)  # every decision is unsure
    primary_only = wide_stage.score_vectors

    def out_of_scope(
        vectors: np.ndarray, wide: np.ndarray | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        results = primary_only(vectors, wide, *args, **kwargs)
        if wide is not None:
            return results
        return [replace(result, abstain=Abstain.OUT_OF_SCOPE) for result in results]

    monkeypatch.setattr(wide_stage, "score_vectors", out_of_scope)
    embedded = count_embedded(wide_encoder, monkeypatch)

    [result] = wide_stage.score_many([german])

    assert reading(german) is Reading.CHECKED
    assert result.abstain is Abstain.OUT_OF_SCOPE
    assert embedded == []


def test_a_prompt_spelt_as_mash_never_pays_for_the_wide_encoder(
    wide_stage: SemanticStage, wide_encoder: BaseEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    mash = "vvvvvvvvv nnnnnnn ppppp"  # held keys the language identifier puts down to a language
    assert reading(mash) is Reading.BOTH and wide_stage.spelling.is_mash(mash)
    embedded = count_embedded(wide_encoder, monkeypatch)

    [result] = wide_stage.score_many([mash])
    czech = "Kolik jablek zbude, když Petr sní tři z dvanácti jablek v košíku?"
    wide_stage.score_many([czech])

    assert result.abstain is Abstain.OUT_OF_SCOPE and result.confidence == 0.0
    assert mash not in embedded and czech in embedded  # a Czech prompt still pays for it


def test_a_conversation_whose_latest_turn_is_telugu_takes_the_wide_path(
    wide_stage: SemanticStage,
) -> None:
    result = wide_stage.score_turns(["hello there, how are you today", TELUGU_MATH])
    assert wide_stage.index.route_names[int(result.ranked.positions[0])] == "math"


def test_service_routes_a_bengali_prompt_through_the_wide_path(
    wide_build: tuple[Path, Path],
    encoder: BaseEncoder,
    wide_encoder: BaseEncoder,
    tmp_path: Path,
) -> None:
    routes, index_dir = wide_build
    settings = Settings(
        routes_dir=routes, index_dir=Path(shutil.copytree(index_dir, tmp_path / "index"))
    )
    settings = settings.model_copy(update={"wide_encoder": WIDE_MODEL})
    app = create_app(settings, encoder=encoder, wide_encoder=wide_encoder)
    with TestClient(app) as client:
        response = client.post("/route", json={"prompt": BENGALI_MATH, "tiebreak": False})
    assert response.status_code == 200, response.text
    assert response.json()["route"] == "math"


def test_index_built_with_the_wide_encoder_is_refused_without_it(
    wide_build: tuple[Path, Path],
) -> None:
    routes, index_dir = wide_build
    with pytest.raises(IndexStaleError, match="SEMROUTE_WIDE_ENCODER"):
        check_index(index_dir, load_route_set(routes), "use-multilingual-v3-int8", None)


def test_index_built_without_the_wide_encoder_is_refused_with_it(
    small_index: Path, small_routes: Path
) -> None:
    with pytest.raises(IndexStaleError, match="wide encoder 'none'"):
        check_index(
            small_index, load_route_set(small_routes), "use-multilingual-v3-int8", WIDE_MODEL
        )


def test_a_replaced_wide_classifier_is_refused(
    wide_build: tuple[Path, Path], tmp_path: Path
) -> None:
    _, index_dir = wide_build
    copy = Path(shutil.copytree(index_dir, tmp_path / "index"))
    [artefact] = copy.glob("wideclassifier-*.npz")
    artefact.write_bytes(artefact.read_bytes()[:-10])
    with pytest.raises(IndexCorruptError, match="wideclassifier"):
        load_index(copy)


def test_the_wide_encoders_token_budget_enters_the_fingerprint(
    small_routes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.encoding import e5
    from service.index.fingerprint import fingerprint

    route_set = load_route_set(small_routes)
    before = fingerprint(route_set, "m", WIDE_MODEL)
    assert fingerprint(route_set, "m", None) != before

    monkeypatch.setattr(e5, "E5_MAX_TOKENS", e5.E5_MAX_TOKENS + 32)

    assert fingerprint(route_set, "m", WIDE_MODEL) != before
