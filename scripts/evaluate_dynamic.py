"""Measure the complexity estimate and conversation routing on the default routes.

    python scripts/evaluate_dynamic.py

Prints held-out accuracy and AUROC of the complexity estimate (the one stored in index/,
fitted from routes/complexity.jsonl; scored on tests/data/complexity_holdout.jsonl), and multi-turn
routing accuracy with and without context (tests/data/multiturn.jsonl).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.api.engine import load_state  # noqa: E402
from service.config.complexity_examples import COMPLEXITY_FILE  # noqa: E402
from service.config.settings import Settings  # noqa: E402
from service.encoding.encoder import Encoder  # noqa: E402
from service.index import complexity  # noqa: E402
from service.routing.router import Router  # noqa: E402
from service.tools import dynamic_eval  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=Path, default=ROOT / "routes")
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--data", type=Path, default=ROOT / "tests" / "data")
    args = parser.parse_args()
    encoder = Encoder()
    route_set, index = load_state(Settings(routes_dir=args.routes, index_dir=args.index))

    # The served model; fitted here only for routes whose index has none.
    model = index.complexity or complexity.train_from_file(args.routes / COMPLEXITY_FILE, encoder)
    held_out = dynamic_eval.evaluate(model, args.data / "complexity_holdout.jsonl", encoder)
    print(
        f"complexity: {held_out.examples} held-out prompts, "
        f"accuracy {held_out.accuracy:.3f}, AUROC {held_out.auroc:.3f}"
    )

    router = Router(route_set, index, encoder)
    try:
        conversations = dynamic_eval.read_conversations(args.data / "multiturn.jsonl")
        for score in await dynamic_eval.evaluate_multiturn(router, conversations):
            print(
                f"multi-turn, {score.mode}: accuracy {score.accuracy:.3f} over {score.turns} "
                f"turns; follow-ups {score.follow_up_accuracy:.3f} over {score.follow_ups}"
            )
    finally:
        router.close()


if __name__ == "__main__":
    asyncio.run(main())
