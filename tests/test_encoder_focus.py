"""Instruction focus: a prompt's first segment (its task) is embedded again and added in, and so
is the closing question of a long passage."""

import numpy as np
import pytest

from service.encoding.encoder import Encoder, closing_question, instruction_head, l2_normalise

REVIEW_PROMPT = (
    "Summarise this review: great blender, crushes ice in seconds, but the motor is loud "
    "and the lid leaks when it is full."
)

PASSAGE = (
    "After leaving Edison's company Tesla partnered with two businessmen in 1886, Robert Lane "
    "and Benjamin Vail, who agreed to finance an electric lighting company in Tesla's name. "
    "The company installed electrical arc light based illumination systems designed by Tesla."
)
PASSAGE_QUESTION = PASSAGE + "\nWhat did Tesla receive first after starting his company?"


# -- instruction_head -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "head"),
    [
        (REVIEW_PROMPT, "Summarise this review"),
        ("Translate into French\nI would like a coffee, please.", "Translate into French"),
        ("Fix this bug. It crashes when the list is empty", "Fix this bug."),
        ("Is this right? 2 + 2 = 5", "Is this right?"),
        ("\n\nTranslate this\nhola, ¿qué tal?", "Translate this"),
        # Full-width marks take no space after them.
        ("请用三句话总结这篇文章。市政府宣布明年起推广垃圾分类。", "请用三句话总结这篇文章。"),
        ("次の文章を要約してください：市は給食費を無償化する。", "次の文章を要約してください："),
        ("这是真的吗？地球是平的", "这是真的吗？"),
        ("इस लेख का सारांश लिखिए। सरकार ने नई योजना शुरू की।", "इस लेख का सारांश लिखिए।"),
        ("ما عاصمة مصر؟ أجب باختصار", "ما عاصمة مصر؟"),
    ],
)
def test_multi_part_prompt_has_its_first_segment_as_head(prompt: str, head: str) -> None:
    assert instruction_head(prompt) == head


@pytest.mark.parametrize(
    "prompt",
    [
        "what is the capital of France",
        "Summarise this review:",  # nothing after the colon
        "Q: what is 2+2",  # segments under three characters do not count
        "长江全长多少公里？",  # one sentence, its mark at the end
        "12:30 at https://example.com/a.b",  # a colon or stop without a space
        "",
    ],
)
def test_single_segment_prompt_has_no_head(prompt: str) -> None:
    assert instruction_head(prompt) is None


# -- closing_question -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "question"),
    [
        (PASSAGE_QUESTION, "What did Tesla receive first after starting his company?"),
        (PASSAGE + " Who financed the company?", "Who financed the company?"),
        ("王连，字文仪，南阳人。三国时蜀汉官员。" * 12 + "\n王连字什么？", "王连字什么？"),
    ],
)
def test_long_passage_then_a_question_has_the_question_as_its_close(
    prompt: str, question: str
) -> None:
    assert closing_question(prompt) == question


@pytest.mark.parametrize(
    "prompt",
    [
        "Hi! How are you?",  # short: small talk, not material plus a request
        PASSAGE,  # no question at the end
        PASSAGE + "\nA. Lane\nB. Vail",  # a question's choices come last
        "x" * 300 + "?",  # one segment
    ],
)
def test_other_prompts_have_no_closing_question(prompt: str) -> None:
    assert closing_question(prompt) is None


# -- Encoder.encode with a head ---------------------------------------------------------------


@pytest.fixture
def encoder(minilm_encoder: Encoder) -> Encoder:
    """The sentence-transformers encoder: its model's own embedding, without focus, is at
    hand to compare with (``test_encoder_backends.py`` holds the ONNX vectors to it)."""
    return minilm_encoder


def plain_embedding(encoder: Encoder, text: str) -> np.ndarray:
    """The model's own normalised embedding of ``text``, with no instruction focus."""
    return np.asarray(encoder._model.encode([text], normalize_embeddings=True)[0])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_prompt_with_a_head_embeds_as_the_normalised_sum_of_whole_and_head(
    encoder: Encoder,
) -> None:
    head = instruction_head(REVIEW_PROMPT)
    assert head is not None
    expected = l2_normalise(
        (plain_embedding(encoder, REVIEW_PROMPT) + encoder.encode([head])[0])[None, :]
    )[0]

    vector = encoder.encode([REVIEW_PROMPT])[0]

    assert cosine(vector, expected) > 0.999


def test_prompt_without_a_head_embeds_as_the_model_does(encoder: Encoder) -> None:
    prompt = "what is the capital of France"

    assert cosine(encoder.encode([prompt])[0], plain_embedding(encoder, prompt)) > 0.999


def test_head_pulls_the_prompt_towards_its_task(encoder: Encoder) -> None:
    task = encoder.encode(["summarise this text in a few sentences"])[0]

    focused = encoder.encode([REVIEW_PROMPT])[0]

    assert cosine(focused, task) > cosine(plain_embedding(encoder, REVIEW_PROMPT), task)


def test_batch_mixing_prompts_with_and_without_heads_keeps_each_row_its_own(
    encoder: Encoder,
) -> None:
    prompts = [
        "what is the capital of France",
        REVIEW_PROMPT,
        "hello there",
        "Translate into French\nI would like a coffee, please.",
    ]

    batch = encoder.encode(prompts)

    assert batch.shape == (4, encoder.dimension)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    for row, prompt in zip(batch, prompts, strict=True):
        assert cosine(row, encoder.encode([prompt])[0]) > 0.999, prompt


def test_long_passage_with_a_question_adds_the_question_to_whole_and_head(
    encoder: Encoder,
) -> None:
    head, question = instruction_head(PASSAGE_QUESTION), closing_question(PASSAGE_QUESTION)
    assert head is not None and question is not None
    expected = l2_normalise(
        (
            plain_embedding(encoder, PASSAGE_QUESTION)
            + plain_embedding(encoder, head)
            + plain_embedding(encoder, question)
        )[None, :]
    )[0]

    vector = encoder.encode([PASSAGE_QUESTION])[0]

    assert cosine(vector, expected) > 0.999
