"""Keyboard mash is told by its spelling; real prompts in any language and script are not."""

from collections import Counter

import pytest
from conftest import REPO_ROOT

from service.config.routes import load_route_set
from service.routing.gibberish import Spelling
from service.tools.mash import KINDS, keyboard_mash

REAL_PROMPTS = [
    "hi",
    "ok thanks",
    "lol",
    "thx",
    "hmmmm",
    "sooo good",
    "Wazzup?",
    "2x+3=7 solve",
    "x^2 + 5x - 14 = 0",
    "https://www.github.com/psf/requests/issues?q=is%3Aopen",
    "def f(x): return x*2",
    "np.zeros((3, 3), dtype=np.float32)",
    "git rebase -i HEAD~3",
    "SELECT id, name FROM users WHERE age > 30",
    "写一首关于秋天的诗",
    "この文章を英語に翻訳してください",
    "ช่วยแปลประโยคนี้เป็นภาษาอังกฤษหน่อยครับ",
    "이 코드의 버그를 찾아 주세요",
    "ما هي عاصمة أستراليا؟",
    "इस लेख का सारांश तीन वाक्यों में लिखिए",
    "Nisaidie kuandika barua kwa mwalimu wangu",
    "Przetłumacz to zdanie na język angielski",
    "Schreib mir eine kurze Geschichte über einen Drachen",
    "Giải phương trình bậc hai sau",
]


@pytest.fixture(scope="module")
def spelling() -> Spelling:
    routes = load_route_set(REPO_ROOT / "routes")
    return Spelling.fit(u for route in routes.routes for u in route.utterances)


def test_real_prompts_in_any_script_are_not_mash(spelling: Spelling) -> None:
    assert [p for p in REAL_PROMPTS if spelling.is_mash(p)] == []


def test_held_keys_and_random_mixed_case_letters_are_mash(spelling: Spelling) -> None:
    for text in ["wwww", "jjjjjjj kkkk", "eeeeeee uuuuu", "XkQpTzWvRb", "asdfghjkl", "zxcvbnm,./"]:
        assert spelling.is_mash(text), (text, spelling.score(text), spelling.random_baseline)


def test_most_generated_mash_of_every_lettered_kind_is_caught(spelling: Spelling) -> None:
    samples = keyboard_mash(600, seed=11)
    caught = Counter(kind for kind, text in samples if spelling.is_mash(text))
    total = Counter(kind for kind, _ in samples)
    # Spelling alone; the classifier's "no route" class catches most of the rest.
    assert caught["held"] >= 0.9 * total["held"], (caught, total)
    for kind in ("walk", "letters", "mixed-case"):
        assert caught[kind] >= 0.4 * total[kind], (kind, caught, total)
    assert sum(caught.values()) >= 0.4 * len(samples), caught
    assert set(total) == set(KINDS)


def test_too_few_letters_are_not_judged(spelling: Spelling) -> None:
    for text in ["zzz", "wtf", "idk", "433!", "ok"]:
        assert spelling.score(text) is None


def test_the_table_is_learnt_from_the_utterances_it_is_given() -> None:
    english = Spelling.fit(["the cat sat on the mat and then the dog ran after the cat"] * 20)
    walks = Spelling.fit(["qxzvkj wpfgh qxzvkj wpfgh"] * 20)

    assert english.is_mash("qxzvkj wpfgh") and not english.is_mash("the cat and the dog")
    assert walks.is_mash("the cat and the dog") and not walks.is_mash("qxzvkj wpfgh")
