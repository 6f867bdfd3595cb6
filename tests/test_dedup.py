"""One answer to "is it the same?", shared by route loading, the tie-breaker and the chains."""

from __future__ import annotations

from service.completion.chain import model_chain
from service.config.dedup import normalise, unique


def test_texts_differing_in_case_and_spacing_normalise_alike() -> None:
    assert normalise("  Write a\tPython\n function ") == normalise("write a python function")
    assert normalise("Straße") == normalise("STRASSE")


def test_unique_keeps_the_first_of_each_in_order() -> None:
    assert unique(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]
    assert unique([("x", 1), ("y", 2), ("x", 3)], key=lambda pair: pair[0]) == [("x", 1), ("y", 2)]


def test_a_model_named_twice_in_the_chain_is_tried_once_in_its_first_role() -> None:
    chain = model_chain("m1", ["m2", "m1", "m2", "m3"], escalation="m3")
    assert chain == [("m1", "primary"), ("m2", "fallback"), ("m3", "fallback")]
