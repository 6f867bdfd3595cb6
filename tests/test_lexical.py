"""Hashed n-gram features: the same at build and at serving, and defined for any script."""

import numpy as np
import pytest

from service.index import lexical


def test_features_are_the_same_for_the_same_text_and_ignore_case_and_spacing() -> None:
    first = lexical.features("Set an alarm for 7am")

    assert len(first) > 0
    np.testing.assert_array_equal(first, lexical.features("set  an ALARM for 7am"))
    assert (np.diff(first) > 0).all()  # sorted, each feature once
    assert first.min() >= 0 and first.max() < lexical.BUCKETS


def test_text_without_spaces_still_has_character_ngrams() -> None:
    chinese = lexical.features("请把这段话翻译成英文")
    japanese = lexical.features("明日の天気を教えてください")

    assert len(chinese) >= 20 and len(japanese) >= 20
    assert len(np.intersect1d(chinese, japanese)) < len(chinese) // 2


def test_an_empty_or_blank_prompt_has_no_feature_and_scores_zero() -> None:
    weights = np.ones((lexical.BUCKETS, 3), dtype=np.float32)

    assert len(lexical.features("   ")) == 0
    np.testing.assert_array_equal(lexical.scores(["", "  "], weights), np.zeros((2, 3)))


def test_serving_scores_equal_the_build_time_matrix_product() -> None:
    texts = ["how do I boil an egg", "what's the weather in Paris", "天気はどう", "x"]
    weights = np.random.default_rng(0).normal(size=(lexical.BUCKETS, 4)).astype(np.float32)

    expected = lexical.matrix(texts) @ weights  # type: ignore[operator]

    np.testing.assert_allclose(lexical.scores(texts, weights), expected, rtol=1e-4, atol=1e-5)


def test_matrix_rows_have_unit_length() -> None:
    rows = lexical.matrix(["one two three", "a"])

    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)))  # type: ignore[attr-defined]
    np.testing.assert_allclose(norms[:, 0], 1.0, rtol=1e-6)


def test_only_the_opening_of_a_very_long_prompt_is_read() -> None:
    opening = "word " * (lexical.MAX_CHARS // 5)

    assert len(opening) == pytest.approx(lexical.MAX_CHARS, abs=5)
    np.testing.assert_array_equal(
        lexical.features(opening[: lexical.MAX_CHARS] + "zzz qqq"),
        lexical.features(opening[: lexical.MAX_CHARS] + "different tail entirely"),
    )


def test_a_prompt_is_put_down_to_the_writing_system_of_most_of_its_letters() -> None:
    assert lexical.writing_system("sort a list in Python") == "LATIN"
    assert lexical.writing_system("자바에서 HashMap을 정렬하는 방법") == "HANGUL"
    assert lexical.writing_system("Найдите сумму первых 100 чисел") == "CYRILLIC"
    assert lexical.writing_system("求函数的极值") == "CJK"
    # Japanese is told by its kana, even when most of its letters are Han characters.
    assert lexical.writing_system("三角形の内角の和を証明せよ") == "KANA"
    assert lexical.writing_system("12 + 30 = ?") == ""


def test_a_system_seen_in_few_routes_is_not_read_and_its_prompts_keep_their_other_signs() -> None:
    texts = ["sort a list", "bake a cake", "solve 2x = 4", "hello there"] * 5
    labels = [0, 1, 2, 3] * 5
    texts += ["안녕하세요 반가워요"] * 30  # Korean rows, all small talk
    labels += [3] * 30

    systems = lexical.covered_systems(texts, labels, n_routes=4)

    assert systems == ("LATIN",)
    # A Korean coding question keeps its Latin name and its symbols, not its Korean words.
    assert lexical.readable("자바에서 HashMap을 정렬하는 방법", systems).split() == ["HashMap"]
    assert lexical.readable("Найдите 100 + 23", systems).split() == ["100", "+", "23"]
    assert lexical.readable("sort a list, 정렬", systems).split() == ["sort", "a", "list,"]
    # "none" rows (labels at n_routes) do not make a system known.
    assert lexical.covered_systems(["Привет мир"] * 40, [4] * 40, n_routes=4) == ()
