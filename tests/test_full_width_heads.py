"""Chinese and Japanese write no space after a stop or colon; their prompts still get an
instruction head, embedded with the whole so that the request, not the pasted article,
decides the route."""

import numpy as np

from service.encoding.encoder import BaseEncoder, instruction_head, l2_normalise

ARTICLE = (
    "本市今日发布新能源汽车推广新政。自下月起，购买纯电动汽车的市民可获得最高8000元的消费补贴，"
    "补贴名额共2万个，先到先得。同时，全市计划年内新增公共充电桩5000个，重点覆盖老旧小区和高速服务区。"
)
REQUEST = "请用三句话总结这篇文章。"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_chinese_request_before_its_article_is_its_head() -> None:
    assert instruction_head(REQUEST + ARTICLE) == REQUEST


def test_the_head_pulls_a_chinese_summary_request_towards_summarising(
    encoder: BaseEncoder,
) -> None:
    """Measured against the same task asked in English, which the multilingual encoder maps
    near its Chinese wording: the article alone is about cars and subsidies."""
    prompt = REQUEST + ARTICLE
    task = encoder.encode(["Summarise this article in a few sentences."])[0]
    article_only = l2_normalise(encoder._embed([encoder.clip(prompt)], 1, False))[0]

    focused = encoder.encode([prompt])[0]

    assert cosine(focused, task) > cosine(article_only, task) + 0.05
    expected = l2_normalise(
        (article_only + l2_normalise(encoder._embed([REQUEST], 1, False))[0])[None, :]
    )[0]
    assert cosine(focused, expected) > 0.999
