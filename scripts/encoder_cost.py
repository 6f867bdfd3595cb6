"""What the multilingual path costs: encoder time per prompt, by language and length.

    python scripts/encoder_cost.py --pool ../shared/data/prompts/prompts.jsonl

Times one prompt at a time (the latency a request sees) for the multilingual default (its
one-row graph, and the packaged graph it is derived from) and for English MiniLM (int8 ONNX),
on short prompts in English, Chinese and four other languages and on long ones. The machine
is usually shared: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.config.settings import MINILM_MODEL, MULTILINGUAL_MODEL  # noqa: E402
from service.encoding.encoder import OnnxGraph, load_encoder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--pool", type=Path, default=ROOT.parent / "shared/data/prompts/prompts.jsonl"
    )
    parser.add_argument("--count", type=int, default=150, help="prompts per row")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.pool.read_text(encoding="utf-8").splitlines()]

    def short(languages: set[str]) -> list[str]:
        texts = [r["text"] for r in rows if r["lang"] in languages and len(r["text"]) < 120]
        return texts[: args.count]

    sets = {
        "en, short": short({"en"}),
        "zh, short": short({"zh"}),
        "ko/ja/fr/it, short": short({"ko", "ja", "fr", "it"}),
        "long (> 3000 chars)": [r["text"] for r in rows if len(r["text"]) > 3000][:40],
    }
    graphs: list[tuple[str, OnnxGraph]] = [
        (MULTILINGUAL_MODEL, "int8"),
        (MULTILINGUAL_MODEL, "shipped"),
        (MINILM_MODEL, "int8"),
    ]
    for model, graph in graphs:
        encoder = load_encoder(model, cache_size=0, graph=graph)
        encoder.encode(["warm up"])
        for name, texts in sets.items():
            spent = []
            for text in texts:
                started = time.perf_counter()
                encoder.encode([text])
                spent.append((time.perf_counter() - started) * 1000)
            p90 = sorted(spent)[int(len(spent) * 0.9)]
            print(
                f"{model:<40} {graph:<8} {name:<20} n={len(texts):>3} "
                f"p50 {statistics.median(spent):6.2f} ms  p90 {p90:6.2f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
