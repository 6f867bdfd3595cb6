"""How much quality a model choice keeps for the money it spends, on per-prompt outcome data.

The metrics are RouteLLM's (Ong et al., arXiv 2406.18665). A router ranks prompts by a score
and sends the top share of them to the strong model, the rest to the weak one:

- **PGR** (performance gap recovered) at a share: (quality - weak) / (strong - weak), where
  strong and weak are the qualities of always calling that model;
- **APGR**: the area under PGR as the share of strong calls goes from 0 to 1 (random: 0.5);
- **CPT(x)**: the smallest share of strong calls whose PGR reaches x (lower is better).

Prompts with equal scores are taken in random order, so the curve is linear across a tie
(its expected value); a constant score therefore gives exactly the random router.

The learned router is the service's own estimator (``service/index/quality.py``) fitted on
the training rows: its score is the strong model's expected quality minus the weak one's.
With more than two models, the service's policy (``expected quality - price / cost_quality``)
is swept over ``cost_quality`` and the report gives the quality reached at a set of budgets.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from service.config.outcomes import OutcomeRow
from service.encoding.encoder import EMBEDDING_SCHEME
from service.index import quality

BUDGETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
TRAIN_SIZES = (500, 1500)
ROUTELLM_STRONG = "gpt-4-1106-preview"
ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
# Paper, Appendix D: USD per 1k tokens (mean of input and output prices as it computes them).
ROUTELLM_PRICES = {ROUTELLM_STRONG: 0.0247, ROUTELLM_WEAK: 0.00024}
# Paper, Table 2, MMLU: the best published router and the random one.
ROUTELLM_PUBLISHED = {
    "similarity-weighted ranking (best)": {"apgr": 0.603, "cpt50": 0.354, "cpt80": 0.716},
    "random": {"apgr": 0.500, "cpt50": 0.5007, "cpt80": 0.7993},
}


class Embeds(Protocol):
    model_id: str

    def encode(
        self, texts: list[str], batch_size: int = ..., progress: bool = ...
    ) -> np.ndarray: ...


# ---- metrics: pure functions of scores and outcomes -------------------------------------


def quality_curve(score: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Mean quality when the k highest-scored prompts go to the strong model, k = 0..n.

    Across a run of equal scores the curve is the straight line between the run's ends
    (the expected value over the orders those prompts could be taken in).
    """
    score = np.asarray(score, dtype=np.float64)
    n = len(score)
    if n == 0:
        raise ValueError("no prompts to evaluate")
    order = np.argsort(-score, kind="stable")
    gain = (np.asarray(strong, dtype=np.float64) - np.asarray(weak, dtype=np.float64))[order]
    cumulative = np.concatenate([[0.0], np.cumsum(gain)])
    sorted_scores = score[order]
    bounds = np.concatenate([[0], np.nonzero(np.diff(sorted_scores))[0] + 1, [n]])
    gained = np.interp(np.arange(n + 1), bounds, cumulative[bounds])
    return (float(np.sum(weak)) + gained) / n


def pgr(curve: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    gap = float(np.mean(strong) - np.mean(weak))
    if gap == 0:
        raise ValueError("the strong and weak models have the same mean quality: no gap")
    return (curve - float(np.mean(weak))) / gap


def apgr(pgr_curve: np.ndarray) -> float:
    """Area under PGR against the share of strong calls (trapezoids over k/n)."""
    shares = np.linspace(0.0, 1.0, len(pgr_curve))
    return float(np.trapezoid(pgr_curve, shares))


def cpt(pgr_curve: np.ndarray, target: float) -> float:
    """Smallest share of strong calls whose PGR reaches ``target`` (1.0 if none does)."""
    reached = np.nonzero(pgr_curve >= target - 1e-12)[0]
    return float(reached[0] / (len(pgr_curve) - 1)) if len(reached) else 1.0


@dataclass(frozen=True)
class Prices:
    strong: float
    weak: float

    def saving(self, strong_share: float) -> float:
        """Cost saved against always-strong when ``strong_share`` of the calls are strong
        (every prompt priced at the same blended rate)."""
        spent = strong_share * self.strong + (1 - strong_share) * self.weak
        return 1.0 - spent / self.strong


def router_row(
    score: np.ndarray, strong: np.ndarray, weak: np.ndarray, prices: Prices
) -> dict[str, float]:
    """APGR, CPT(50 %), CPT(80 %) and the cost saving at CPT(80 %) of one router's scores."""
    curve = pgr(quality_curve(score, strong, weak), strong, weak)
    at80 = cpt(curve, 0.8)
    return {
        "apgr": round(apgr(curve), 4),
        "cpt50": round(cpt(curve, 0.5), 4),
        "cpt80": round(at80, 4),
        "saving_at_cpt80": round(prices.saving(at80), 4),
    }


def budget_curve(
    expected: np.ndarray, actual: np.ndarray, prices: np.ndarray, steps: int = 200
) -> list[tuple[float, float]]:
    """(mean price, mean actual quality) of the policy max(expected - price / lambda) swept
    over lambda, cheapest end first; ties go to the cheaper model."""
    prices = np.asarray(prices, dtype=np.float64)
    order = np.argsort(prices, kind="stable")
    expected, actual, prices = expected[:, order], actual[:, order], prices[order]
    spread = max(float(prices.max() - prices.min()), 1e-12)
    lambdas = np.concatenate([[1e-12], np.geomspace(spread * 1e-3, spread * 1e4, steps), [1e12]])
    rows = np.arange(len(expected))
    points = []
    for lam in lambdas:
        value = expected - prices[None, :] / lam
        # argmax picks the first maximum: the cheapest model among equal values.
        chosen = np.argmax(value, axis=1)
        points.append((float(prices[chosen].mean()), float(actual[rows, chosen].mean())))
    return sorted(points)


def quality_at_budgets(
    points: list[tuple[float, float]], top_price: float, budgets: Sequence[float] = BUDGETS
) -> dict[str, float | None]:
    """Best quality whose mean price is within each budget (a share of the top price)."""
    result: dict[str, float | None] = {}
    for budget in budgets:
        within = [q for cost, q in points if cost <= budget * top_price + 1e-12]
        result[f"{budget:g}"] = round(max(within), 4) if within else None
    return result


# ---- data ------------------------------------------------------------------------------


def read_routellm_mmlu(folder: Path) -> list[OutcomeRow]:
    """RouteLLM's MMLU results as outcome rows, without its contaminated prompts."""
    return [row for rows in read_routellm_mmlu_subjects(folder).values() for row in rows]


def read_routellm_mmlu_subjects(folder: Path) -> dict[str, list[OutcomeRow]]:
    """RouteLLM's MMLU outcome rows per subject (alphabetical), without the contaminated
    prompts. The subjects serve only to measure how the estimate transfers to subjects it
    was not trained on; the estimator never sees them."""
    csv.field_size_limit(1 << 30)
    contaminated = {
        json.loads(line)["eval_prompt"]
        for line in (folder / "contaminated_prompts.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    }
    subjects: dict[str, list[OutcomeRow]] = {}
    for path in sorted((folder / "responses").glob("mmlu_*.csv")):
        rows = subjects.setdefault(path.stem.removeprefix("mmlu_"), [])
        with path.open(encoding="utf-8", newline="") as handle:
            for record in csv.DictReader(handle):
                if record["prompt"] in contaminated:
                    continue
                scores = {m: float(record[m] == "True") for m in (ROUTELLM_STRONG, ROUTELLM_WEAK)}
                rows.append(OutcomeRow(prompt=record["prompt"].strip(), outcomes=scores))
    return subjects


def split_subjects(
    subjects: dict[str, list[OutcomeRow]], half: str
) -> tuple[list[OutcomeRow], list[OutcomeRow]]:
    """(train, test) rows: ``half`` "even" trains on the subjects at even positions in
    alphabetical order and tests on the others, "odd" the reverse."""
    if half not in ("even", "odd"):
        raise ValueError(f"half must be 'even' or 'odd', not {half!r}")
    names = sorted(subjects)
    train_names = set(names[0 if half == "even" else 1 :: 2])
    train = [row for name in names if name in train_names for row in subjects[name]]
    test = [row for name in names if name not in train_names for row in subjects[name]]
    return train, test


def embed_cached(
    encoder: Embeds, texts: list[str], cache_dir: Path | None, batch_size: int = 64
) -> np.ndarray:
    """Embeddings of ``texts``, kept in ``cache_dir`` keyed by the model and the texts, so a
    second evaluation of the same data skips the encoder (14k prompts take minutes)."""
    digest = hashlib.sha256(f"{encoder.model_id}\n{EMBEDDING_SCHEME}\n".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    path = None if cache_dir is None else cache_dir / f"outcome-vectors-{digest.hexdigest()}.npy"
    if path is not None and path.exists():
        return np.load(path)
    vectors = encoder.encode(texts, batch_size=batch_size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        with temp.open("wb") as handle:
            np.save(handle, vectors)
        temp.replace(path)
    return vectors


# ---- evaluation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    texts: list[str]
    vectors: np.ndarray
    scores: np.ndarray  # (n, models), every row scores every model


def complete_rows(rows: Sequence[OutcomeRow], models: Sequence[str]) -> list[int]:
    """Positions of the rows that score every one of ``models`` (the others cannot be judged)."""
    return [i for i, row in enumerate(rows) if all(m in row.outcomes for m in models)]


Estimate = Callable[[Dataset, np.ndarray, np.ndarray], np.ndarray]


def learned(data: Dataset, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The service's estimator fitted on ``train``: expected quality per model on ``test``."""
    models = [str(j) for j in range(data.scores.shape[1])]
    model = quality.fit(
        data.vectors[train], [data.texts[i] for i in train], data.scores[train], models
    )
    if model is None or len(model.models) != len(models):
        raise ValueError(f"too few training rows ({len(train)}) to fit every model")
    return model.expected(data.vectors[test], [data.texts[i] for i in test])


def out_of_fold(
    data: Dataset,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    estimate: Estimate = learned,
    train_size: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Expected quality of every test row from a model fitted on its fold's training rows
    (the first ``train_size`` of them, shuffled, when given)."""
    rng = np.random.default_rng(seed)
    result = np.full(data.scores.shape, np.nan)
    for train, test in folds:
        if train_size is not None and train_size < len(train):
            train = rng.permutation(train)[:train_size]
        result[test] = estimate(data, train, test)
    return result


def kfold(n: int, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    if not 2 <= k <= n:
        raise ValueError(f"--cv needs 2 <= K <= rows ({n})")
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, k)
    return [(np.concatenate(parts[:i] + parts[i + 1 :]), parts[i]) for i in range(k)]


def evaluate(
    data: Dataset,
    test: np.ndarray,
    expected: np.ndarray,
    models: Sequence[str],
    prices: Sequence[float],
    extra: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The report's routers on the ``test`` rows: learned, random, oracle (and ``extra``
    scores), each with APGR, CPT(50 %), CPT(80 %) and the saving at CPT(80 %)."""
    price = np.asarray(prices, dtype=np.float64)
    means = data.scores[test].mean(axis=0)
    strong_j = int(np.lexsort((-means, -price))[0])  # priciest; equal prices: better
    weak_j = int(np.lexsort((means, price))[0])  # cheapest; equal prices: worse
    strong, weak = data.scores[test, strong_j], data.scores[test, weak_j]
    money = Prices(float(price[strong_j]), float(price[weak_j]))
    rows = {
        "learned": router_row(expected[:, strong_j] - expected[:, weak_j], strong, weak, money),
        "random": router_row(np.zeros(len(test)), strong, weak, money),
        "oracle": router_row(strong - weak, strong, weak, money),
    }
    for name, score in (extra or {}).items():
        rows[name] = router_row(score, strong, weak, money)
    report: dict[str, Any] = {
        "rows": len(test),
        "strong": models[strong_j],
        "weak": models[weak_j],
        "models": {
            m: {"price_per_1k_tokens": float(p), "mean_quality": round(float(q), 4)}
            for m, p, q in zip(models, price, means, strict=True)
        },
        "routers": rows,
    }
    if len(models) > 2:
        points = budget_curve(expected, data.scores[test], price)
        oracle = budget_curve(data.scores[test], data.scores[test], price)
        report["budgets"] = {
            "learned": quality_at_budgets(points, float(price.max())),
            "oracle": quality_at_budgets(oracle, float(price.max())),
        }
    return report


def fmt_share(value: float) -> str:
    return f"{value * 100:.1f} %"


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    lines = [
        f"{report['rows']} test prompts; strong {report['strong']}, weak {report['weak']}",
        f"{'router':<44} {'APGR':>6} {'CPT(50%)':>9} {'CPT(80%)':>9} {'saving@CPT80':>13}",
    ]
    for name, row in report["routers"].items():
        lines.append(
            f"{name:<44} {row['apgr']:>6.3f} {fmt_share(row['cpt50']):>9} "
            f"{fmt_share(row['cpt80']):>9} {fmt_share(row['saving_at_cpt80']):>13}"
        )
    for name, row in report.get("published", {}).items():
        lines.append(
            f"{'RouteLLM ' + name:<44} {row['apgr']:>6.3f} {fmt_share(row['cpt50']):>9} "
            f"{fmt_share(row['cpt80']):>9} {'':>13}"
        )
    for point in report.get("learning_curve", []):
        lines.append(
            f"learning curve: {point['train_rows']:>6} training rows -> APGR {point['apgr']:.3f}, "
            f"CPT(80%) {fmt_share(point['cpt80'])}"
        )
    for name, budgets in report.get("budgets", {}).items():
        shown = ", ".join(f"{b}: {'-' if q is None else f'{q:.3f}'}" for b, q in budgets.items())
        lines.append(f"quality at budget (share of the top price), {name}: {shown}")
    return "\n".join(lines)


def plot(report: dict[str, Any], curves: dict[str, np.ndarray], path: Path) -> None:
    """Quality against the share of strong calls, per router (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5))
    for name, curve in curves.items():
        axis.plot(np.linspace(0, 100, len(curve)), curve, label=name)
    axis.set_xlabel(f"share of calls to {report['strong']} (%)")
    axis.set_ylabel("mean quality")
    axis.set_title("quality against cost")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
