"""How often prompts reach a new route written from a handful of examples, beside the defaults.

    python scripts/evaluate_new_routes.py --routes routes --hwu ../shared/data/hwu64 \\
        [--labels cooking_recipe,weather_query,alarm_set,play_music] [--examples 8] \\
        [--seeds 0,1,2] [--memo /tmp/new-routes-memo.npz]

For each seed, ``--examples`` utterances of each HWU64 label (from its ``train`` split) become
a new route beside the route folder's own; the index is built in a temporary folder through
the service's code, and every other ``train`` prompt of those labels is routed. A prompt
counts as reaching its route when the route is the one served: accepted, or kept as the top
route where the folder's ``undecided: top`` keeps it. Seed 0 takes each label's first
examples; other seeds draw them at random. ``--memo`` keeps the embeddings between runs.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from service.config.routes import Route, load_route_set
from service.config.settings import Settings
from service.encoding.encoder import load_encoder
from service.index.store import build_index, load_index
from service.routing.scoring import Abstain
from service.routing.semantic import SemanticStage
from service.tools.adaptation import AdaptedEncoder, adapt_encoders
from service.tools.evaluation import MemoEncoder

DEFAULT_LABELS = "cooking_recipe,weather_query,alarm_set,play_music"


def _read_hwu(folder: Path) -> list[tuple[str, str]]:
    texts = (folder / "train" / "seq.in").read_text(encoding="utf-8").splitlines()
    labels = (folder / "train" / "label").read_text(encoding="utf-8").splitlines()
    if len(texts) != len(labels):
        raise ValueError(f"{folder}/train: {len(texts)} prompts but {len(labels)} labels")
    return list(zip(texts, labels, strict=True))


def _load_memo(encoder: MemoEncoder, path: Path | None) -> None:
    if path is not None and path.exists():
        with np.load(path) as stored:
            encoder._memo.update(zip(stored["texts"].tolist(), stored["vectors"], strict=True))


def _save_memo(encoder: MemoEncoder, path: Path | None) -> None:
    if path is not None and encoder._memo:
        texts = list(encoder._memo)
        np.savez(path, texts=np.array(texts), vectors=np.stack([encoder._memo[t] for t in texts]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--routes", type=Path, default=Path("routes"))
    parser.add_argument("--hwu", type=Path, required=True, help="HWU64 folder with train/")
    parser.add_argument("--labels", default=DEFAULT_LABELS)
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--memo", type=Path, help="npz that keeps embeddings between runs")
    parser.add_argument(
        "--adapt-encoder",
        choices=["cosine", "supcon"],
        metavar="LOSS",
        help="fit a contrastive adapter with this loss on the routes' utterances, new routes "
        "included (service/tools/adaptation.py; an experiment)",
    )
    args = parser.parse_args(argv)
    rows = _read_hwu(args.hwu)
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    route_set = load_route_set(args.routes)
    settings = Settings()
    encoder = MemoEncoder(
        load_encoder(
            settings.embedding_model,
            settings.encoder_backend,
            cache_size=0,
            graph=settings.onnx_graph,
            cache_dir=settings.cache_dir,
        )
    )
    _load_memo(encoder, args.memo)
    shares = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        new_routes, tests = [], []
        for label in labels:
            texts = [text for text, row_label in rows if row_label == label]
            if len(texts) <= args.examples:
                print(f"HWU64 label {label!r} has {len(texts)} prompts", file=sys.stderr)
                return 2
            if seed:
                random.Random(f"{seed}-{label}").shuffle(texts)
            examples = tuple(dict.fromkeys(texts[: args.examples]))
            template = route_set.routes[0]
            new_routes.append(
                Route(name=label, description=label, model=template.model, utterances=examples)
            )
            tests += [(text, label) for text in texts[args.examples :] if text not in examples]
        routes = replace(route_set, routes=(*route_set.routes, *new_routes))
        seed_encoder: MemoEncoder | AdaptedEncoder = encoder
        if args.adapt_encoder:
            seed_encoder, _ = adapt_encoders(routes, encoder, None, loss=args.adapt_encoder)
        with tempfile.TemporaryDirectory(prefix="semroute-new-routes-") as folder:
            build_index(routes, seed_encoder, Path(folder))
            stage = SemanticStage(routes, load_index(Path(folder)), seed_encoder)
            results = stage.score_many([text for text, _ in tests])
            stage.close()
        names = stage.index.route_names
        keep_top = routes.config.undecided == "top"
        reached = 0
        for (_, label), result in zip(tests, results, strict=True):
            top = names[int(result.ranked.positions[0])] if len(result.ranked.positions) else None
            served = result.abstain is None or (
                keep_top and result.abstain is not Abstain.OUT_OF_SCOPE
            )
            reached += int(served and top == label)
        shares.append(reached / len(tests))
        print(f"seed {seed}: {reached}/{len(tests)} reach their route ({shares[-1]:.3f})")
    _save_memo(encoder, args.memo)
    print(f"mean share over {len(shares)} seed(s): {float(np.mean(shares)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
