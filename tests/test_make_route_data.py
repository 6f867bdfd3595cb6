"""scripts/make_route_data.py: the default routes' utterance files from the prompt pool and MMLU."""

import csv
import json
import subprocess
from pathlib import Path

from conftest import REPO_ROOT, run_script

SCRIPT = REPO_ROOT / "scripts" / "make_route_data.py"


def pool_row(text: str, route: str, source: str, split: str = "train") -> dict:
    return {
        "text": text,
        "source": f"{source}@0000:file.json",
        "source_label": source,
        "lang": "en",
        "suggested_route": route,
        "split": split,
    }


def write_mmlu(folder: Path, subjects: dict[str, list[str]], contaminated: list[str]) -> Path:
    (folder / "responses").mkdir(parents=True)
    for subject, prompts in subjects.items():
        with (folder / "responses" / f"mmlu_{subject}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["prompt", "model-a", "model-b"])
            writer.writerows([prompt, True, False] for prompt in prompts)
    (folder / "contaminated_prompts.jsonl").write_text(
        "".join(json.dumps({"eval_prompt": p}) + "\n" for p in contaminated), encoding="utf-8"
    )
    return folder


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_script(SCRIPT, *args)


def routes_folder(tmp_path: Path) -> tuple[Path, Path]:
    routes = tmp_path / "routes"
    routes.mkdir()
    (routes / "calibration.jsonl").write_text("", encoding="utf-8")
    pool = tmp_path / "pool.jsonl"
    rows = [pool_row(f"What is {i} plus {i}?", "math", "arith") for i in range(5)]
    rows += [pool_row(f"Who wrote book number {i}?", "knowledge", "trivia") for i in range(5)]
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return routes, pool


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_mmlu_questions_join_the_route_their_subject_names(tmp_path: Path) -> None:
    routes, pool = routes_folder(tmp_path)
    question = "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth"
    mmlu = write_mmlu(
        tmp_path / "mmlu",
        {
            "astronomy": [f"{question}\nAnswer:", "Leaked question?\nA. x\nB. y\nAnswer:"],
            "high_school_mathematics": ["Solve 2x = 6.\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:"],
            "college_physics": ["A mass on a spring has period 2 s...\nA. 1\nAnswer:"],
        },
        contaminated=["Leaked question?\nA. x\nB. y\nAnswer:"],
    )

    result = run("--pool", pool, "--routes", routes, "--mmlu", mmlu, "--per-route", "50")

    assert result.returncode == 0, result.stderr
    knowledge = read(routes / "data" / "knowledge.jsonl")
    math = read(routes / "data" / "math.jsonl")
    calibration = read(routes / "calibration.jsonl")
    # each question lands in the utterances or, one in five by hash, in the calibration rows
    labelled = {(r["text"], r["label"]) for r in knowledge + math + calibration}
    assert (question, "knowledge") in labelled
    assert ("Solve 2x = 6.\nA. 1\nB. 2\nC. 3\nD. 4", "math") in labelled
    texts = [text for text, _ in labelled]
    assert not any("Answer:" in text for text in texts)
    assert not any("Leaked" in text or "spring" in text for text in texts)
    assert all(set(r) == {"text", "label", "source", "lang"} for r in knowledge + math)


def test_an_mmlu_folder_without_its_files_is_refused_by_name(tmp_path: Path) -> None:
    routes, pool = routes_folder(tmp_path)
    missing = tmp_path / "no-mmlu-here"

    result = run("--pool", pool, "--routes", routes, "--mmlu", missing)

    assert result.returncode == 2
    assert f"cannot read the MMLU folder {missing}" in result.stderr
    assert not (routes / "data" / "knowledge.jsonl").exists()


def test_pool_rows_that_a_route_file_or_written_row_already_holds_are_left_out(
    tmp_path: Path,
) -> None:
    """The build refuses an utterance listed twice; the pool must not add a second copy."""
    routes, pool = routes_folder(tmp_path)
    (routes / "chitchat.yaml").write_text(
        "description: small talk\nmodel: openai/gpt-4.1-nano\nutterances:\n  - What is 1 plus 1?\n",
        encoding="utf-8",
    )
    (routes / "data" / "written").mkdir(parents=True)
    (routes / "data" / "written" / "knowledge.jsonl").write_text(
        json.dumps({"text": "who wrote  BOOK number 2?", "label": "knowledge"}) + "\n",
        encoding="utf-8",
    )

    result = run("--pool", pool, "--routes", routes, "--per-route", "50")

    assert result.returncode == 0, result.stderr
    math = {row["text"] for row in read(routes / "data" / "math.jsonl")}
    knowledge = [row["text"] for row in read(routes / "data" / "knowledge.jsonl")]
    assert "What is 1 plus 1?" not in math and "What is 2 plus 2?" in math
    assert knowledge.count("who wrote  BOOK number 2?") == 1
    assert "Who wrote book number 2?" not in knowledge and "Who wrote book number 3?" in knowledge


def test_the_pools_unserved_rows_are_calibration_rows_only_when_asked(tmp_path: Path) -> None:
    routes, pool = routes_folder(tmp_path)
    unserved = [
        pool_row(f"Is the sentiment of review {i} positive?", "none", "multiemo", split="calib")
        for i in range(4)
    ]
    served = pool_row("What is 40 plus 2?", "math", "arith", split="calib")
    with pool.open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in [*unserved, served])

    assert run("--pool", pool, "--routes", routes, "--mash", "3").returncode == 0
    default = read(routes / "calibration.jsonl")
    assert (
        run("--pool", pool, "--routes", routes, "--mash", "3", "--calib-none", "2").returncode == 0
    )
    asked = read(routes / "calibration.jsonl")

    # By default "none" is keyboard mash only; the served calibration row is kept either way.
    assert [r["source"] for r in default if r["label"] == "none"] == ["generated:keyboard-mash"] * 3
    assert served["text"] in {r["text"] for r in default} & {r["text"] for r in asked}
    pool_none = [
        r for r in asked if r["label"] == "none" and r["source"] != "generated:keyboard-mash"
    ]
    assert len(pool_none) == 2 and all("multiemo" in r["source"] for r in pool_none)


def gathered_row(text: str, route: str, label: str) -> dict:
    return {
        "text": text,
        "source": "owner/dataset@0000:questions.jsonl",
        "source_label": label,
        "lang": "en",
        "suggested_route": route,
    }


def test_gathered_prompts_join_their_route_beside_the_pools_picks(tmp_path: Path) -> None:
    routes, pool = routes_folder(tmp_path)
    (routes / "data" / "gathered").mkdir(parents=True)
    rows = [gathered_row(f"Why is sky number {i} blue?", "knowledge", "open") for i in range(20)]
    rows.append(gathered_row("Who wrote book number 3?", "knowledge", "open"))  # in the pool
    (routes / "data" / "gathered" / "everyday.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )

    result = run(
        "--pool", pool, "--routes", routes, "--per-route", "3", "--gathered-per-route", "5"
    )

    assert result.returncode == 0, result.stderr
    knowledge = read(routes / "data" / "knowledge.jsonl")
    everyday = [r for r in knowledge if r["source"].startswith("owner/dataset")]
    # the pool's cap and the gathered cap are separate: three pool rows, five gathered
    assert len(knowledge) - len(everyday) == 3 and len(everyday) == 5
    assert all(r["text"].startswith("Why is sky number") for r in everyday)
    calibration = read(routes / "calibration.jsonl")
    gathered_calibration = {r["text"] for r in calibration if r["source"].startswith("owner/")}
    # about one row in five is held for calibration, never also an utterance
    assert gathered_calibration and not gathered_calibration & {r["text"] for r in everyday}


def test_a_malformed_gathered_file_is_named_with_its_line_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    routes, pool = routes_folder(tmp_path)
    (routes / "data" / "gathered").mkdir(parents=True)
    bad = routes / "data" / "gathered" / "everyday.jsonl"
    bad.write_text(
        json.dumps(gathered_row("Why is the sky blue?", "knowledge", "open"))
        + "\n"
        + json.dumps(gathered_row("Cook me dinner", "cooking", "open"))
        + "\n",
        encoding="utf-8",
    )

    result = run("--pool", pool, "--routes", routes)

    assert result.returncode == 2
    assert f"{bad}: line 2: 'cooking' is not a default route" in result.stderr
    assert not (routes / "data" / "knowledge.jsonl").exists()
    bad.write_text('{"text": "no source"}\n', encoding="utf-8")
    result = run("--pool", pool, "--routes", routes)
    assert result.returncode == 2
    assert f"{bad}: line 1: no source, source_label, lang, suggested_route" in result.stderr
    bad.write_text('["a list"]\n', encoding="utf-8")
    result = run("--pool", pool, "--routes", routes)
    assert result.returncode == 2
    assert f"{bad}: line 1: not a JSON object" in result.stderr
