"""Select the default routes' utterance files and calibration rows from the prompt pool.

    python scripts/make_route_data.py --pool ../shared/data/prompts/prompts.jsonl \
        --mmlu ../shared/data/routellm-mmlu

Writes ``routes/data/<route>.jsonl`` (utterances, from the pool's ``train`` split) and the
pool part of ``routes/calibration.jsonl`` (from its ``calib`` split), each row
``{"text", "label", "source", "lang"}``. With ``--mmlu``, MMLU's questions join the pool as
one more source (``mmlu_rows``). Hand-written rows (``routes/data/written/*.jsonl`` and the
hand-written calibration rows, those without a ``source``) are kept as they are.

Prompts gathered from public sources of everyday requests (``routes/data/gathered/*.jsonl``,
``gathered_rows``) are taken beside the pool's picks, up to ``--gathered-per-route`` a route,
not in competition with them: the pool is exam and benchmark prompts, and a route trained on
those alone sends "Describe the concept of machine learning" to creative writing.

Why a selection and not the whole pool: the pool is exam-heavy and uneven (one source gives
a route 600 prompts, another 5), and every utterance costs build time. Rows are taken
round-robin over sources, and inside a source round-robin over (language, source label),
each list ordered by a hash of the text: a route learns every source's style and no source
outweighs the others, and the same pool always gives the same files.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import yaml

from service.config.dedup import normalise
from service.encoding.encoder import clip_for_embedding

ROUTES = (
    "coding",
    "math",
    "reasoning",
    "creative_writing",
    "summarization",
    "extraction",
    "translation",
    "knowledge",
    "chitchat",
)
MAX_CHARS = 2000  # service/config/routes.py MAX_UTTERANCE_CHARS; a clip adds " … "
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890")


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _split(text: str) -> str:
    """``calib`` for about one text in five, fixed by a hash of the normalised text, else
    ``train``: the split of rows that come without the pool's own."""
    return "calib" if int(_key(normalise(text)), 16) % 5 == 0 else "train"


def source_name(source: str) -> str:
    """A pool row's source without its commit and file (BIG-bench: the task)."""
    if source.startswith("pypi:bigbench"):
        return "bigbench/" + source.split("benchmark_tasks/")[-1].split("/")[0]
    return source.split("@")[0]


def balanced(rows: list[dict], count: int) -> list[dict]:
    """Up to ``count`` rows, round-robin over sources, then over (language, source label).

    A row's ``group``, where it has one, stands for its source here (MMLU's four subject
    categories: each is as large and as varied as a pool source).
    """
    by_source: dict[str, dict[tuple[str, str], list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in sorted(rows, key=lambda r: _key(r["text"])):
        group = row.get("group") or source_name(row["source"])
        by_source[group][(row["lang"], row["source_label"])].append(row)
    queues = {
        source: _interleave(list(groups.values())) for source, groups in sorted(by_source.items())
    }
    chosen: list[dict] = []
    while len(chosen) < count and any(queues.values()):
        for queue in queues.values():
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


MMLU_SOURCE = (
    "lm-sys/RouteLLM@0b64fdafe049e596a3f5657c219329f24af24198:routellm/evals/mmlu/responses/"
)
# MMLU subject -> route. Subjects whose questions mix computation with recall (physics,
# chemistry, accounting, econometrics), or code with concepts (computer science, machine
# learning), and the two-scenario moral judgements are left out rather than guessed.
MMLU_ROUTES = {
    "abstract_algebra": "math",
    "college_mathematics": "math",
    "elementary_mathematics": "math",
    "high_school_mathematics": "math",
    "high_school_statistics": "math",
    "formal_logic": "reasoning",
    "logical_fallacies": "reasoning",
}
# MMLU's own grouping of its subjects (hendrycks/test, categories.py): STEM, humanities,
# social sciences, other. Each category is balanced as one source.
MMLU_CATEGORIES = {
    "stem": "abstract_algebra anatomy astronomy college_biology college_chemistry "
    "college_computer_science college_mathematics college_physics computer_security "
    "conceptual_physics electrical_engineering elementary_mathematics high_school_biology "
    "high_school_chemistry high_school_computer_science high_school_mathematics "
    "high_school_physics high_school_statistics machine_learning",
    "humanities": "formal_logic high_school_european_history high_school_us_history "
    "high_school_world_history international_law jurisprudence logical_fallacies "
    "moral_disputes moral_scenarios philosophy prehistory professional_law world_religions",
    "social_sciences": "econometrics high_school_geography "
    "high_school_government_and_politics high_school_macroeconomics "
    "high_school_microeconomics high_school_psychology human_sexuality "
    "professional_psychology public_relations security_studies sociology us_foreign_policy",
    "other": "business_ethics clinical_knowledge college_medicine global_facts human_aging "
    "management marketing medical_genetics miscellaneous nutrition professional_accounting "
    "professional_medicine virology",
}
MMLU_CATEGORY = {
    subject: category
    for category, subjects in MMLU_CATEGORIES.items()
    for subject in subjects.split()
}
MMLU_DROPPED = {
    "college_physics",
    "high_school_physics",
    "college_chemistry",
    "high_school_chemistry",
    "professional_accounting",
    "econometrics",
    "college_computer_science",
    "high_school_computer_science",
    "computer_security",
    "machine_learning",
    "moral_scenarios",
}


def mmlu_rows(folder: Path) -> list[dict]:
    """MMLU questions (RouteLLM's copy) as pool-shaped rows: the question and its lettered
    choices without the trailing ``Answer:``, a route by subject, the subject's category as
    the balancing group, and a ``calib`` split for about one row in five, fixed by a hash of
    the text like the pool's."""
    banned = {
        json.loads(line)["eval_prompt"].strip()
        for line in (folder / "contaminated_prompts.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    }
    rows: list[dict] = []
    seen: set[str] = set()
    for path in sorted((folder / "responses").glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        if subject in MMLU_DROPPED:
            continue
        with path.open(newline="", encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                prompt = record["prompt"].strip()
                if prompt in banned:
                    continue
                text = prompt.removesuffix("Answer:").strip()
                if normalise(text) in seen:  # a few questions sit in two subjects
                    continue
                seen.add(normalise(text))
                rows.append(
                    {
                        "text": text,
                        "source": MMLU_SOURCE + path.name,
                        "source_label": f"MMLU {subject}",
                        "lang": "en",
                        "suggested_route": MMLU_ROUTES.get(subject, "knowledge"),
                        "group": "mmlu/" + MMLU_CATEGORY.get(subject, "other"),
                        "split": _split(text),
                    }
                )
    return rows


GATHERED_KEYS = ("text", "source", "source_label", "lang", "suggested_route")


def gathered_rows(folder: Path) -> list[dict]:
    """The gathered files' rows, pool-shaped, with a split (``_split``, as MMLU's) and the
    file plus source label as the balancing group. A row without one of ``GATHERED_KEYS``,
    or naming no route, is an error naming the file and line: a silently dropped row would
    change the routes without a trace."""
    rows: list[dict] = []
    for path in sorted(folder.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {number}: not a JSON object")
            missing = [key for key in GATHERED_KEYS if not isinstance(row.get(key), str)]
            if missing:
                raise ValueError(f"{path}: line {number}: no {', '.join(missing)}")
            if row["suggested_route"] not in ROUTES:
                raise ValueError(
                    f"{path}: line {number}: {row['suggested_route']!r} is not a default route"
                )
            group = f"{path.stem}/{row['source_label']}"
            rows.append({**row, "group": group, "split": _split(row["text"])})
    return rows


def _interleave(groups: list[list[dict]]) -> list[dict]:
    out: list[dict] = []
    for position in range(max(len(group) for group in groups)):
        out.extend(group[position] for group in groups if position < len(group))
    return out


def keyboard_mash(count: int, seed: int = 12) -> list[str]:
    """Gibberish of the kinds people type to test a box: key runs, consonant piles,
    pseudo-syllables, repeated chunks, numbers."""
    rng = random.Random(seed)
    letters = "bcdfghjklmnpqrstvwxz"
    vowels = "aeiouy"
    out: list[str] = []
    while len(out) < count:
        words = []
        for _ in range(rng.randint(1, 5)):
            kind = rng.random()
            if kind < 0.3:
                row = rng.choice(KEYBOARD_ROWS)
                start = rng.randrange(len(row) - 3)
                words.append(row[start : start + rng.randint(3, len(row) - start)])
            elif kind < 0.6:
                words.append("".join(rng.choice(letters) for _ in range(rng.randint(3, 7))))
            elif kind < 0.75:
                words.append(
                    "".join(
                        rng.choice(letters) + rng.choice(vowels) for _ in range(rng.randint(1, 3))
                    )
                )
            elif kind < 0.9:  # a chunk typed again and again: "hgfhgf", "jgjg"
                chunk = "".join(rng.choice(letters) for _ in range(rng.randint(2, 3)))
                words.append(chunk * rng.randint(2, 3))
            else:
                words.append(str(rng.randint(0, 999)))
        text = " ".join(words) + rng.choice(["", "", "?", "!", "..", " ?"])
        out.append(text.upper() if rng.random() < 0.1 else text)
    return list(dict.fromkeys(out))


def taken_texts(routes: Path) -> set[str]:
    """The texts the route files and the written rows already hold, normalised as the build
    compares utterances: a pool row equal to one of them would be refused as a duplicate."""
    texts: list[str] = []
    for path in sorted(routes.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and isinstance(document.get("utterances"), list):
            texts += [text for text in document["utterances"] if isinstance(text, str)]
    for path in sorted((routes / "data" / "written").glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        texts += [json.loads(line)["text"] for line in lines if line.strip()]
    return {normalise(text) for text in texts}


def _row(row: dict, label: str) -> dict:
    return {
        "text": clip_for_embedding(row["text"].strip(), MAX_CHARS - 3),
        "label": label,
        "source": row["source"],
        "lang": row["lang"],
    }


def _write(path: Path, rows: Iterable[dict]) -> int:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pool", type=Path, default=Path("../shared/data/prompts/prompts.jsonl"))
    parser.add_argument("--routes", type=Path, default=Path("routes"))
    parser.add_argument(
        "--mmlu",
        type=Path,
        help="RouteLLM's MMLU folder (responses/mmlu_<subject>.csv): exam questions by subject",
    )
    parser.add_argument("--per-route", type=int, default=200, help="pool utterances per route")
    parser.add_argument(
        "--gathered-per-route",
        type=int,
        default=100,
        help="utterances per route from routes/data/gathered/*.jsonl, beside the pool's",
    )
    parser.add_argument("--calib-per-route", type=int, default=40)
    # The pool's unserved rows are all labelling tasks (sentiment, emotion, irony, toxicity)
    # and language identification: extraction's description claims labelling, and as "no
    # route" rows they taught the classifier that an English instruction around text in an
    # unfamiliar language is out of scope (BIG-bench's Persian idioms, all 60 rejected).
    parser.add_argument(
        "--calib-none",
        type=int,
        default=0,
        help="pool rows no route serves, as 'no route' calibration rows (keyboard mash aside)",
    )
    parser.add_argument("--mash", type=int, default=100, help="keyboard-mash calibration rows")
    args = parser.parse_args(argv)

    pool = [json.loads(line) for line in args.pool.read_text(encoding="utf-8").splitlines()]
    if args.mmlu is not None:
        try:
            extra = mmlu_rows(args.mmlu)
        except (OSError, KeyError, ValueError) as error:
            print(f"cannot read the MMLU folder {args.mmlu}: {error!r}", file=sys.stderr)
            return 2
        if not extra:
            print(
                f"cannot read the MMLU folder {args.mmlu}: no responses/mmlu_*.csv", file=sys.stderr
            )
            return 2
        known = {normalise(row["text"]) for row in pool}
        pool += [row for row in extra if normalise(row["text"]) not in known]
    try:
        gathered = gathered_rows(args.routes / "data" / "gathered")
    except (OSError, ValueError) as error:
        print(f"cannot read the gathered prompts: {error}", file=sys.stderr)
        return 2
    taken = taken_texts(args.routes)
    pool = [row for row in pool if normalise(row["text"]) not in taken]
    known = {normalise(row["text"]) for row in pool} | taken
    gathered = [row for row in gathered if normalise(row["text"]) not in known]
    data = args.routes / "data"
    data.mkdir(parents=True, exist_ok=True)
    for route in ROUTES:
        rows = [r for r in pool if r["suggested_route"] == route and r["split"] == "train"]
        written = data / "written" / f"{route}.jsonl"
        extra = (
            [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines() if line]
            if written.exists()
            else []
        )
        chosen = [_row(r, route) for r in balanced(rows, args.per_route)]
        everyday = [r for r in gathered if r["suggested_route"] == route and r["split"] == "train"]
        picked = [_row(r, route) for r in balanced(everyday, args.gathered_per_route)]
        count = _write(data / f"{route}.jsonl", [*chosen, *picked, *extra])
        print(
            f"{route:<17} {count:>4} utterances ({len(picked)} gathered, {len(extra)} hand-written)"
        )

    calibration_path = args.routes / "calibration.jsonl"
    kept = [
        json.loads(line)
        for line in calibration_path.read_text(encoding="utf-8").splitlines()
        if line.strip() and "source" not in json.loads(line)
    ]
    calib: list[dict] = []
    for route in (*ROUTES, "none"):
        rows = [
            r for r in (*pool, *gathered) if r["suggested_route"] == route and r["split"] == "calib"
        ]
        count = args.calib_none if route == "none" else args.calib_per_route
        calib.extend(_row(r, route) for r in balanced(rows, count))
    mash = [
        {"text": text, "label": "none", "source": "generated:keyboard-mash", "lang": "und"}
        for text in keyboard_mash(args.mash)
    ]
    total = _write(calibration_path, [*kept, *calib, *mash])
    print(f"calibration      {total:>4} rows ({len(kept)} hand-written, {len(mash)} mash)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
