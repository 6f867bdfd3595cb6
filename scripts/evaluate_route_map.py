"""How well the console's route map keeps routes apart, by choice of axes.

python scripts/evaluate_route_map.py [--index index]

Fits the map's axes on 80 % of the index's utterances and places the other 20 % with them,
as the console places a typed prompt; the figure is the share of those held-out points whose
10 nearest neighbours on the map (among the fitted ones) vote for their own route. Principal
axes (PCA) against discriminant axes at several shrinkages.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from service.index.route_map import discriminant_axes, principal_axes
from service.index.store import load_index


def held_out_accuracy(
    vectors: np.ndarray, labels: np.ndarray, axes: tuple[np.ndarray, np.ndarray], test: np.ndarray
) -> float:
    mean, components = axes
    train = np.setdiff1d(np.arange(len(labels)), test)
    place = lambda ids: (vectors[ids] - mean) @ components.T  # noqa: E731
    vote = KNeighborsClassifier(10).fit(place(train), labels[train])
    return float(vote.score(place(test), labels[test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=Path("index"))
    args = parser.parse_args()
    index = load_index(args.index)
    vectors = index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal).astype(np.float64)
    labels, routes = index.labels, len(index.route_names)
    test = np.random.default_rng(1).permutation(len(labels))[: len(labels) // 5]
    train = np.setdiff1d(np.arange(len(labels)), test)
    print(f"{len(labels)} utterances, {routes} routes; held out {len(test)}")
    mean, components, shares = principal_axes(vectors[train])
    accuracy = held_out_accuracy(vectors, labels, (mean, components), test)
    print(f"principal axes:              {accuracy:.3f}  (axes keep {shares.sum():.1%})")
    for shrinkage in (0.01, 0.1, 0.2, 0.5, 0.8, 0.9, 1.0):
        mean, components, shares = discriminant_axes(
            vectors[train], labels[train], routes, shrinkage
        )
        accuracy = held_out_accuracy(vectors, labels, (mean, components), test)
        print(
            f"discriminant, shrinkage {shrinkage:<4}: {accuracy:.3f}  (axes keep {shares.sum():.1%})"
        )


if __name__ == "__main__":
    main()
