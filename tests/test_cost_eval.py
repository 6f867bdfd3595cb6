"""The cost-quality benchmark: RouteLLM's metrics on hand-computed cases, then the whole loop."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, offline_env

from service.tools import cost_eval

# Four prompts: the strong model is right on 0, 1 and 3, the weak one only on 1.
STRONG = np.array([1.0, 1.0, 0.0, 1.0])
WEAK = np.array([0.0, 1.0, 0.0, 0.0])
PRICES = cost_eval.Prices(strong=10.0, weak=1.0)


def test_the_curve_sends_the_highest_scores_to_the_strong_model_first() -> None:
    # Order by score: prompt 0 (gain 1), 3 (gain 1), 2 (gain 0), 1 (gain 0).
    score = np.array([0.9, 0.1, 0.5, 0.7])

    curve = cost_eval.quality_curve(score, STRONG, WEAK)

    assert curve == pytest.approx([0.25, 0.5, 0.75, 0.75, 0.75])
    assert cost_eval.pgr(curve, STRONG, WEAK) == pytest.approx([0, 0.5, 1, 1, 1])


def test_apgr_cpt_and_saving_match_the_hand_computation() -> None:
    score = np.array([0.9, 0.1, 0.5, 0.7])

    row = cost_eval.router_row(score, STRONG, WEAK, PRICES)

    # Trapezoids of width 1/4 under PGR 0, .5, 1, 1, 1: (.25 + .75 + 1 + 1) / 4.
    assert row["apgr"] == pytest.approx(0.75)
    assert (row["cpt50"], row["cpt80"]) == (0.25, 0.5)
    # Half the calls strong: 0.5 * 10 + 0.5 * 1 = 5.5 of 10 spent.
    assert row["saving_at_cpt80"] == pytest.approx(0.45)


def test_equal_scores_give_the_random_router_s_straight_line() -> None:
    row = cost_eval.router_row(np.zeros(4), STRONG, WEAK, PRICES)

    assert row["apgr"] == pytest.approx(0.5)
    assert (row["cpt50"], row["cpt80"]) == (0.5, 1.0)


def test_a_tie_is_taken_in_expected_order_not_in_file_order() -> None:
    # Prompts 0 and 1 tie: half a gain expected from the first of them, whichever it is.
    score = np.array([1.0, 1.0, 0.0, 0.0])

    curve = cost_eval.quality_curve(score, STRONG, WEAK)

    assert curve[1] == pytest.approx((1 + 0.5) / 4)
    assert cost_eval.quality_curve(score[::-1], STRONG[::-1], WEAK[::-1]) == pytest.approx(curve)


def test_the_oracle_recovers_the_whole_gap_with_the_fewest_strong_calls() -> None:
    row = cost_eval.router_row(STRONG - WEAK, STRONG, WEAK, PRICES)

    assert (row["cpt50"], row["cpt80"]) == (0.25, 0.5)
    assert row["apgr"] > cost_eval.router_row(np.zeros(4), STRONG, WEAK, PRICES)["apgr"]


def test_no_gap_between_the_models_is_refused() -> None:
    with pytest.raises(ValueError, match="no gap"):
        cost_eval.router_row(np.zeros(2), np.ones(2), np.ones(2), PRICES)


def test_quality_at_a_budget_is_the_best_the_policy_reaches_within_it() -> None:
    # Three models priced 1, 2 and 10; the estimate is exact.
    actual = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])

    points = cost_eval.budget_curve(actual, actual, np.array([1.0, 2.0, 10.0]))
    budgets = cost_eval.quality_at_budgets(points, top_price=10.0, budgets=(0.1, 0.2, 0.4, 1.0))

    # 0.1 x 10 = 1: only the cheapest model everywhere (quality 1/4). At 2 per call on
    # average the middle model where it is right and the cheapest elsewhere fit: 3/4 right
    # (prices 2, 1, 1, 2 when prompt 1 stays cheap: mean 1.5). At 4, prompt 1 goes to the
    # top model too: (2 + 10 + 1 + 2) / 4 = 3.75, all right.
    assert budgets == {"0.1": 0.25, "0.2": 0.75, "0.4": 1.0, "1": 1.0}


def synthetic(n: int = 400, seed: int = 1) -> tuple[cost_eval.Dataset, np.ndarray]:
    """Two topics (returned too); the weak model fails the second, the strong one rarely."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, n)
    centres = np.eye(16, dtype=np.float32)[:2] * 3
    vectors = centres[topic] + rng.normal(0, 0.5, (n, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    strong = (rng.random(n) < 0.9).astype(float)
    weak = np.where(topic == 0, rng.random(n) < 0.85, rng.random(n) < 0.2).astype(float)
    texts = [f"question {i} about topic {t}" for i, t in enumerate(topic)]
    scores = np.stack([strong, weak], 1)
    return cost_eval.Dataset(texts=texts, vectors=vectors, scores=scores), topic


def test_the_learned_router_beats_random_under_cross_validation() -> None:
    data, topic = synthetic()
    folds = cost_eval.kfold(len(data.texts), 4)

    expected = cost_eval.out_of_fold(data, folds)
    report = cost_eval.evaluate(
        data, np.arange(len(data.texts)), expected, ["strong", "weak"], [10.0, 1.0]
    )

    assert report["strong"] == "strong" and report["weak"] == "weak"
    learned, random = report["routers"]["learned"], report["routers"]["random"]
    # The best a router can do without seeing the outcomes: the second topic first.
    by_topic = cost_eval.router_row(topic, *data.scores.T, cost_eval.Prices(10.0, 1.0))
    assert learned["apgr"] > random["apgr"] + 0.15
    assert learned["apgr"] > by_topic["apgr"] - 0.05
    assert learned["cpt80"] < random["cpt80"]
    assert report["routers"]["oracle"]["apgr"] >= learned["apgr"]


def test_k_folds_cover_every_row_once_as_test() -> None:
    folds = cost_eval.kfold(10, 3)

    tested = np.sort(np.concatenate([test for _, test in folds]))
    assert tested.tolist() == list(range(10))
    assert all(not set(train) & set(test) for train, test in folds)


def routellm_folder(base: Path, subjects: dict[str, list[str]], contaminated: str) -> Path:
    """A folder laid out like RouteLLM's MMLU results, GPT-4 right on every prompt."""
    (base / "responses").mkdir(parents=True)
    for subject, prompts in subjects.items():
        lines = ["prompt," + ",".join([cost_eval.ROUTELLM_STRONG, cost_eval.ROUTELLM_WEAK])]
        lines += [f"{prompt},True,False" for prompt in prompts]
        (base / "responses" / f"mmlu_{subject}.csv").write_text("\n".join(lines) + "\n")
    (base / "contaminated_prompts.jsonl").write_text(json.dumps({"eval_prompt": contaminated}))
    return base


def test_a_subject_split_tests_on_the_subjects_it_did_not_train_on(tmp_path: Path) -> None:
    subjects = {"anatomy": ["a1", "a2"], "biology": ["b1"], "chemistry": ["c1", "c2"]}
    folder = routellm_folder(tmp_path, subjects, contaminated="c2")

    by_subject = cost_eval.read_routellm_mmlu_subjects(folder)
    even_train, even_test = cost_eval.split_subjects(by_subject, "even")
    odd_train, odd_test = cost_eval.split_subjects(by_subject, "odd")

    assert [row.prompt for row in even_train] == ["a1", "a2", "c1"]  # c2: contaminated
    assert [row.prompt for row in even_test] == ["b1"]
    assert (odd_train, odd_test) == (even_test, even_train)
    assert cost_eval.read_routellm_mmlu(folder) == even_train[:2] + even_test + even_train[2:]
    assert even_train[0].outcomes == {cost_eval.ROUTELLM_STRONG: 1.0, cost_eval.ROUTELLM_WEAK: 0.0}
    with pytest.raises(ValueError, match="even"):
        cost_eval.split_subjects(by_subject, "first")


def write_outcomes(path: Path, data: cost_eval.Dataset, models: list[str]) -> Path:
    lines = [
        json.dumps({"prompt": t, "outcomes": dict(zip(models, map(float, s), strict=True))})
        for t, s in zip(data.texts, data.scores, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_script(*args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "evaluate_cost.py"), *map(str, args)],
        cwd=REPO_ROOT,
        env=offline_env(SEMROUTE_CACHE_DIR=str(cache)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_reports_learned_random_and_oracle_rows_and_a_learning_curve(
    tmp_path: Path,
) -> None:
    # Prompts that say which topic they are about, so the real encoder can tell them apart.
    rng = np.random.default_rng(3)
    texts, scores = [], []
    for i in range(120):
        hard = i % 2 == 1
        texts.append(
            f"prove theorem {i} about eigenvalues of random matrices"
            if hard
            else f"what is the capital of country number {i}"
        )
        scores.append([float(rng.random() < 0.9), float(rng.random() < (0.2 if hard else 0.9))])
    data = cost_eval.Dataset(texts=texts, vectors=np.zeros((120, 1)), scores=np.array(scores))
    outcomes = write_outcomes(tmp_path / "o.jsonl", data, ["openai/gpt-4.1", "openai/gpt-4.1-nano"])
    report = tmp_path / "r.json"

    result = run_script(
        outcomes,
        "--cv",
        "3",
        "--sizes",
        "40",
        "--report",
        report,
        "--png",
        tmp_path / "c.png",
        cache=tmp_path / "cache",
    )

    assert result.returncode == 0, result.stderr
    written = json.loads(report.read_text())
    assert written["strong"] == "openai/gpt-4.1" and written["weak"] == "openai/gpt-4.1-nano"
    assert set(written["routers"]) == {"learned", "random", "oracle"}
    assert written["routers"]["learned"]["apgr"] > 0.7
    assert [p["train_rows"] for p in written["learning_curve"]] == [40, 80]
    assert "learned" in result.stdout and "APGR" in result.stdout
    assert (tmp_path / "c.png").stat().st_size > 0


def test_a_bad_outcome_line_stops_the_command_naming_file_and_line(tmp_path: Path) -> None:
    outcomes = tmp_path / "o.jsonl"
    outcomes.write_text('{"prompt": "a", "outcomes": {"x": 2}}\nnot json\n', encoding="utf-8")

    result = run_script(outcomes, "--cv", "2", cache=tmp_path / "cache")

    assert result.returncode == 2
    assert f"{outcomes}: line 1: outcomes.x: 2 is not a score in [0, 1]" in result.stderr
    assert f"{outcomes}: line 2: not JSON" in result.stderr


def test_a_subject_split_needs_routellm_s_subjects(tmp_path: Path) -> None:
    outcomes = tmp_path / "o.jsonl"
    outcomes.write_text('{"prompt": "a", "outcomes": {"x": 1}}\n', encoding="utf-8")

    result = run_script(outcomes, "--subject-split", "even", cache=tmp_path / "cache")

    assert result.returncode == 2
    assert "--routellm-mmlu with --subject-split" in result.stderr
