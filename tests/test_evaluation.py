"""Labelled data in, routing metrics out: readers, route sets built from data, the metrics."""

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from service.tools.evaluation import (
    PLACEHOLDER_MODEL,
    DatasetError,
    Example,
    MemoEncoder,
    Scored,
    metrics,
    normalised,
    read_clinc,
    read_examples,
    reliability,
    route_name,
    route_set_from_examples,
    row_folds,
    source_folds,
    with_examples,
    without_texts,
)

# -- read_examples ----------------------------------------------------------------------------


def test_jsonl_examples_are_read_with_out_of_scope_labels_as_none(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    rows = [
        {"text": "  fix my python bug ", "label": "coding"},
        {"text": "what is the weather", "label": "oos"},
        {"text": "who are you", "label": "NONE"},
        {"text": "tell me a joke", "label": ""},
    ]
    path.write_text(
        "\n".join(json.dumps(row) for row in rows[:2])
        + "\n\n   \n"
        + "\n".join(json.dumps(row) for row in rows[2:])
        + "\n",
        encoding="utf-8",
    )

    examples = read_examples(path)

    assert examples == [
        Example("fix my python bug", "coding"),
        Example("what is the weather", None),
        Example("who are you", None),
        Example("tell me a joke", None),
    ]


def test_jsonl_rows_with_blank_text_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "   ", "label": "coding"}\n{"text": "hi", "label": "chat"}\n')

    assert read_examples(path) == [Example("hi", "chat")]


def test_jsonl_line_that_is_not_json_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "fine", "label": "a"}\n\n{"text": broken\n', encoding="utf-8")

    with pytest.raises(DatasetError, match=re.escape(f"{path}:3: not JSON")):
        read_examples(path)


@pytest.mark.parametrize("line", ['["a list"]', '{"label": "coding"}', '{"text": 42}'])
def test_jsonl_line_without_a_text_string_is_reported_with_file_and_line(
    tmp_path: Path, line: str
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(f'{{"text": "fine", "label": "a"}}\n{line}\n', encoding="utf-8")

    with pytest.raises(
        DatasetError, match=re.escape(f"{path}:2: expected an object with a 'text' string")
    ):
        read_examples(path)


def test_csv_examples_are_read_by_column_name(tmp_path: Path) -> None:
    path = tmp_path / "data.CSV"
    path.write_text(
        "label,text,extra\n"
        'coding," write a regex for emails ",x\n'
        "oos,what time is it,\n"
        ",no label here,\n"
        "chat,,\n"
        '"Out_Of_Scope","a, text with a comma",\n',
        encoding="utf-8",
    )

    examples = read_examples(path)

    assert examples == [
        Example("write a regex for emails", "coding"),
        Example("what time is it", None),
        Example("no label here", None),
        Example("a, text with a comma", None),
    ]


def test_csv_without_text_and_label_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("prompt,category\nhello,chat\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="'text' and 'label' columns"):
        read_examples(path)


def test_missing_file_is_a_dataset_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.jsonl"

    with pytest.raises(DatasetError, match=re.escape(f"{path}: no such file")):
        read_examples(path)


# -- read_clinc -------------------------------------------------------------------------------


@pytest.fixture
def clinc_file(tmp_path: Path) -> Path:
    path = tmp_path / "data_full.json"
    data = {
        "train": [["what is my balance", "balance"], ["book a table for two", "restaurant"]],
        "val": [["how much money do I have", "balance"]],
        "oos_val": [["what is the tallest mountain", "oos"]],
        "test": [["reserve a table", "restaurant"]],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_clinc_splits_are_joined_in_the_order_named(clinc_file: Path) -> None:
    examples = read_clinc(clinc_file, ["val", "oos_val"])

    assert examples == [
        Example("how much money do I have", "balance"),
        Example("what is the tallest mountain", None),
    ]


def test_unknown_clinc_split_is_refused_listing_the_splits_it_has(clinc_file: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        read_clinc(clinc_file, ["train", "validation"])

    assert "['validation']" in str(caught.value)
    assert "['oos_val', 'test', 'train', 'val']" in str(caught.value)


# -- route sets from data ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("balance", "balance"),
        ("Credit Card Limit", "credit_card_limit"),
        ("what's-up?", "what_s-up"),
        ("  Travel / Alert  ", "travel_alert"),
        ("???", "route"),
    ],
)
def test_route_name_turns_a_label_into_a_valid_route_name(label: str, name: str) -> None:
    assert route_name(label) == name


def test_one_route_per_in_scope_label_with_deduplicated_utterances() -> None:
    examples = [
        Example("what is my balance", "Balance"),
        Example("book a table", "restaurant"),
        Example("what is my balance", "Balance"),
        Example("how much do I have", "Balance"),
        Example("what is the tallest mountain", None),
    ]

    route_set, labels = route_set_from_examples(examples)

    assert route_set.names == ("balance", "restaurant")
    assert route_set.get("balance").utterances == ("what is my balance", "how much do I have")
    assert route_set.get("restaurant").utterances == ("book a table",)
    assert labels == {"balance": "Balance", "restaurant": "restaurant"}
    assert route_set.get("balance").description == "Balance"
    assert {route.model for route in route_set.routes} == {PLACEHOLDER_MODEL}
    assert route_set.config.default_route == "balance"
    assert route_set.calibration == ()


def test_labels_that_collapse_to_one_route_name_are_refused() -> None:
    with pytest.raises(DatasetError, match="clash as 'credit_card'"):
        route_set_from_examples([Example("a", "Credit Card"), Example("b", "credit card!")])


def test_data_without_in_scope_examples_is_refused() -> None:
    with pytest.raises(DatasetError, match="no in-scope example"):
        route_set_from_examples([Example("what is the tallest mountain", None)])


# -- metrics ----------------------------------------------------------------------------------


def scored(truth: str | None, predicted: str | None, confidence: float, top: str) -> Scored:
    return Scored(truth=truth, predicted=predicted, confidence=confidence, top=top)


# Six in scope (a, b), four out of scope. Confidences separate in scope from out of scope.
RESULTS = [
    scored("a", "a", 0.9, "a"),
    scored("a", "a", 0.8, "a"),
    scored("a", "b", 0.7, "b"),  # wrong route
    scored("b", "b", 0.9, "b"),
    scored("b", None, 0.6, "b"),  # abstained on an in-scope prompt, right top route
    scored("b", "a", 0.65, "a"),  # wrong route
    scored(None, None, 0.1, "a"),
    scored(None, None, 0.2, "b"),
    scored(None, None, 0.3, "a"),
    scored(None, "a", 0.4, "a"),  # accepted an out-of-scope prompt
]


def test_overall_accuracy_counts_out_of_scope_as_a_class() -> None:
    report = metrics(RESULTS)

    assert report["n_test"] == 10
    assert report["n_in_scope"] == 6
    assert report["n_oos"] == 4
    assert report["overall_accuracy"] == pytest.approx(6 / 10)  # 3 routed + 3 abstained right


def test_in_scope_accuracy_counts_abstaining_as_wrong() -> None:
    assert metrics(RESULTS)["in_scope_accuracy"] == pytest.approx(3 / 6)


def test_top_route_accuracy_ignores_abstaining() -> None:
    assert metrics(RESULTS)["top_route_accuracy"] == pytest.approx(4 / 6)


def test_out_of_scope_precision_recall_and_f1() -> None:
    report = metrics(RESULTS)

    assert report["oos_precision"] == pytest.approx(3 / 4)  # one abstention was in scope
    assert report["oos_recall"] == pytest.approx(3 / 4)  # one oos prompt was accepted
    assert report["oos_f1"] == pytest.approx(3 / 4)


def test_auroc_measures_how_confidence_separates_in_scope_from_out_of_scope() -> None:
    assert metrics(RESULTS)["auroc"] == pytest.approx(1.0)

    inverted = [Scored(r.truth, r.predicted, 1 - r.confidence, r.top) for r in RESULTS]
    assert metrics(inverted)["auroc"] == pytest.approx(0.0)

    overlapping = [*RESULTS, scored(None, "b", 0.95, "b")]
    assert 0.5 < metrics(overlapping)["auroc"] < 1.0


def test_macro_f1_averages_every_class_including_out_of_scope() -> None:
    # a: P 2/4 (a, a, b->a, oos->a), R 2/3; b: P 1/2, R 1/3; oos: P 3/4, R 3/4.
    f1_a = 2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3)
    f1_b = 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3)
    f1_oos = 3 / 4

    assert metrics(RESULTS)["macro_f1"] == pytest.approx((f1_a + f1_b + f1_oos) / 3)


def test_most_confused_lists_in_scope_mistakes_most_frequent_first() -> None:
    results = [
        *RESULTS,
        scored("a", "b", 0.7, "b"),
        scored("a", "b", 0.7, "b"),
        scored("b", None, 0.7, "b"),
    ]

    confused = metrics(results)["most_confused"]

    assert confused == [
        {"truth": "a", "predicted": "b", "count": 3},
        {"truth": "b", "predicted": "oos", "count": 2},
        {"truth": "b", "predicted": "a", "count": 1},
    ]


def test_without_out_of_scope_examples_the_oos_metrics_are_none() -> None:
    in_scope_only = [r for r in RESULTS if r.truth is not None]

    report = metrics(in_scope_only)

    assert report["n_oos"] == 0
    for key in ("oos_precision", "oos_recall", "oos_f1", "auroc"):
        assert report[key] is None, key
    assert report["in_scope_accuracy"] == pytest.approx(3 / 6)
    assert report["overall_accuracy"] == pytest.approx(3 / 6)


def test_perfect_router_scores_one_everywhere() -> None:
    perfect = [
        scored("a", "a", 0.9, "a"),
        scored("b", "b", 0.8, "b"),
        scored(None, None, 0.1, "a"),
    ]

    report = metrics(perfect)

    for key in ("overall_accuracy", "in_scope_accuracy", "top_route_accuracy", "oos_f1", "auroc"):
        assert report[key] == pytest.approx(1.0), key
    assert report["macro_f1"] == pytest.approx(1.0)
    assert report["most_confused"] == []


def test_metrics_of_no_results_report_zero_examples_instead_of_crashing() -> None:
    """An empty test file must give a report (or a clear error), not a numpy TypeError."""
    report = metrics([])

    assert report["n_test"] == 0
    assert report["overall_accuracy"] == 0.0
    assert report["in_scope_accuracy"] is None
    assert report["auroc"] is None
    assert report["most_confused"] == []


# -- per-group accuracy, calibration error, leave-sources-out ---------------------------------


def _scored(truth: str, predicted: str, probability: float, **fields: str) -> Scored:
    return Scored(truth, predicted, probability, probability=probability, **fields)


def test_accuracy_is_reported_per_source_and_per_language() -> None:
    results = [
        _scored("math", "math", 0.9, source="svamp", lang="en"),
        _scored("math", "reasoning", 0.9, source="svamp", lang="en"),
        _scored("math", "math", 0.9, source="gaokao", lang="zh"),
    ]

    report = metrics(results)

    assert report["by_source"] == {
        "svamp": {"n": 2, "accuracy": 0.5},
        "gaokao": {"n": 1, "accuracy": 1.0},
    }
    assert report["by_lang"]["zh"] == {"n": 1, "accuracy": 1.0}


def test_calibration_error_is_the_weighted_gap_between_stated_and_observed() -> None:
    # Stated 0.9 ten times, right five times: a gap of 0.4 over every decision.
    results = [_scored("a", "a" if i < 5 else "b", 0.9) for i in range(10)]

    table = reliability(results)

    assert table["ece"] == pytest.approx(0.4)
    assert table["bins"] == [
        {"low": 0.9, "high": 1.0, "count": 10, "stated": pytest.approx(0.9), "observed": 0.5}
    ]


def test_a_calibrated_router_has_no_calibration_error() -> None:
    results = [_scored("a", "a" if i < 3 else "b", 0.3) for i in range(10)]

    assert reliability(results)["ece"] == pytest.approx(0.0)


def test_leave_sources_out_withholds_every_row_of_a_fold_s_sources() -> None:
    rows = [Example(f"{source} prompt {i}", "math", source) for source in "abcd" for i in range(5)]

    folds = source_folds(rows, folds=2, max_per_source=3)

    assert len(folds) == 2
    tested = [{e.source for e in fold_rows} for _, fold_rows in folds]
    assert set().union(*tested) == set("abcd") and not tested[0] & tested[1]
    for withheld, fold_rows in folds:
        assert len(withheld) == 5 * len({e.source for e in fold_rows})
        for source in {e.source for e in fold_rows}:
            assert sum(e.source == source for e in fold_rows) == 3


def test_without_texts_drops_withheld_utterances_and_calibration_rows() -> None:
    route_set, _ = route_set_from_examples(
        [
            Example("Solve x + 1 = 2", "math"),
            Example("add two numbers", "math"),
            Example("hi", "chat"),
        ]
    )
    route_set = replace(route_set, calibration=(("what is 2+2", "math"), ("hey", "chat")))

    kept = without_texts(route_set, frozenset({"solve x + 1 = 2", "hi", "hey"}))

    assert kept.names == ("math",)  # chat lost its only utterance
    assert kept.routes[0].utterances == ("add two numbers",)
    assert kept.calibration == (("what is 2+2", "math"),)


# -- MemoEncoder --------------------------------------------------------------------------------


class _Counting:
    """An encoder that gives each text a fixed unit vector and records what it embedded."""

    model_id = "counting"
    dimension = 4

    def __init__(self, identity: str = "a") -> None:
        self.embedded: list[str] = []
        self.identity = identity

    def vector_identity(self) -> dict[str, str]:
        return {"model": self.model_id, "identity": self.identity}

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.embedded.extend(texts)
        vectors = np.array([[len(t), 1.0, 0.0, 0.0] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_memo_encoder_embeds_each_distinct_text_once() -> None:
    inner = _Counting()
    memo = MemoEncoder(inner)

    first = memo.encode(["a", "bb", "a"])
    again = memo.encode(["bb", "ccc"])

    assert inner.embedded == ["a", "bb", "ccc"]
    np.testing.assert_array_equal(first[1], again[0])


def test_a_stored_memo_spares_the_next_run_the_texts_it_embedded(tmp_path: Path) -> None:
    store = tmp_path / "vectors.npz"
    first = MemoEncoder(_Counting(), store)
    vectors = first.encode(["one", "three"])
    first.save()

    inner = _Counting()
    second = MemoEncoder(inner, store).encode(["three", "one", "seven"])

    assert inner.embedded == ["seven"]
    np.testing.assert_allclose(second[:2], vectors[::-1])


def test_a_store_written_under_another_encoder_identity_is_not_used(tmp_path: Path) -> None:
    store = tmp_path / "vectors.npz"
    first = MemoEncoder(_Counting("old"), store)
    first.encode(["one"])
    first.save()

    inner = _Counting("new")
    MemoEncoder(inner, store).encode(["one"])

    assert inner.embedded == ["one"]


def test_a_damaged_store_is_ignored_and_rewritten(tmp_path: Path) -> None:
    store = tmp_path / "vectors.npz"
    store.write_bytes(b"not a zip file")

    inner = _Counting()
    memo = MemoEncoder(inner, store)
    memo.encode(["one"])
    memo.save()

    assert inner.embedded == ["one"]
    later = _Counting()
    MemoEncoder(later, store).encode(["one"])
    assert later.embedded == []


def test_row_folds_route_every_row_once_and_never_train_on_it() -> None:
    rows = [Example(f"prompt {i}", "math" if i % 2 else "chat") for i in range(11)]
    rows.append(Example("Prompt  3", "math"))  # the same text as a row above, once normalised

    folds = row_folds(rows, folds=3)

    assert len(folds) == 3
    tested = [e.text for _, test in folds for e in test]
    assert sorted(tested) == sorted(e.text for e in rows)
    for train, test in folds:
        assert not {normalised(e.text) for e in train} & {normalised(e.text) for e in test}
        assert len(train) + len(test) == len(rows)


def test_with_examples_adds_rows_to_their_label_s_route_only() -> None:
    route_set, _ = route_set_from_examples(
        [Example("Solve x + 1 = 2", "math"), Example("hi", "chat")]
    )

    grown = with_examples(
        route_set,
        [
            Example("what is 3 * 4", "math"),
            Example("qwzx plonk", None),  # out of scope: no route learns it
            Example("book a flight", "travel"),  # no such route: left out
        ],
    )

    by_name = {route.name: route.utterances for route in grown.routes}
    assert by_name == {"math": ("Solve x + 1 = 2", "what is 3 * 4"), "chat": ("hi",)}
    assert grown.calibration == route_set.calibration
