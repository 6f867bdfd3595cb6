"""Build the FAISS index from the route files (re-run after editing ``routes/``).

python scripts/build_index.py            # validate routes, embed, write index/
python scripts/build_index.py --check    # exit 1 when index/ is missing or stale
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from service.config.routes import RouteSetError, load_route_set
from service.config.settings import Settings
from service.encoding.e5 import load_wide_encoder
from service.encoding.encoder import EncoderError, load_encoder
from service.index.store import IndexProblem, build_index, check_index


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--routes", type=Path, default=settings.routes_dir, help="route folder")
    parser.add_argument("--index", type=Path, default=settings.index_dir, help="index folder")
    parser.add_argument("--model", default=settings.embedding_model, help="embedding model")
    parser.add_argument(
        "--wide-encoder",
        default=settings.wide_encoder,
        help="wide encoder for prompts in scripts the model does not cover, or none "
        "(default: SEMROUTE_WIDE_ENCODER)",
    )
    parser.add_argument("--check", action="store_true", help="only check that the index is current")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    wide_model = Settings(wide_encoder=args.wide_encoder).wide_model

    try:
        route_set = load_route_set(args.routes)
    except RouteSetError as error:
        print(error, file=sys.stderr)
        return 2
    if args.check:
        try:
            manifest = check_index(args.index, route_set, args.model, wide_model)
        except IndexProblem as error:
            print(error, file=sys.stderr)
            return 1
        print(
            f"{args.index}/ is up to date ({len(manifest['entries'])} vectors, built {manifest['built_at']})"
        )
        return 0

    started = time.perf_counter()
    try:
        # With the ONNX backend this also derives and caches the int8 graph the server loads.
        encoder = load_encoder(
            args.model,
            settings.encoder_backend,
            settings.embedding_device,
            cache_size=0,
            graph=settings.onnx_graph,
            cache_dir=settings.cache_dir,
        )
        manifest = build_index(
            route_set,
            encoder,
            args.index,
            progress=not args.quiet,
            approx_above=settings.approx_above,
            graph_above=settings.graph_above,
            wide_encoder=load_wide_encoder(wide_model, cache_size=0, cache_dir=settings.cache_dir),
        )
    except (EncoderError, IndexProblem) as error:
        print(f"index build failed, the previous index is untouched: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("index build interrupted, the previous index is untouched", file=sys.stderr)
        return 130
    width = max(len(name) for name in manifest["routes"])
    print(f"{'route':<{width}}  utterances")
    for name, count in manifest["routes"].items():
        print(f"{name:<{width}}  {count:>10}")
    summary = manifest.get("quality")
    if summary:
        fitted = ", ".join(
            f"{name} ({info['rows']} rows, mean {info['mean_score']})"
            for name, info in summary["models"].items()
        )
        print(f"quality estimator from {summary['rows']} outcome rows: {fitted or 'no model'}")
        for name, count in summary["unlisted_models"].items():
            print(f"outcomes score '{name}' ({count} rows), which no route lists: not used")
        for name in summary["too_few_rows"]:
            print(f"outcomes score '{name}' on too few rows to learn from: not used")
    for model, used in manifest.get("embedding_cache", {}).items():
        print(f"{model}: embedded {used['embedded']} texts, {used['reused']} from the cache")
    total = sum(manifest["routes"].values())
    print(
        f"wrote {args.index}/: {total} vectors of dimension {manifest['embedding_dim']} "
        f"({manifest['index_type']}, model {manifest['embedding_model']}, "
        f"wide encoder {wide_model or 'none'}) "
        f"in {time.perf_counter() - started:.1f}s; fingerprint {manifest['fingerprint'][:12]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
