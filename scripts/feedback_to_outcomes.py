"""Turn rated answers from the decision log into outcome rows for routes/outcomes/.

python scripts/feedback_to_outcomes.py decisions.jsonl > routes/outcomes/feedback.jsonl

Each ``/feedback`` rating becomes ``{"prompt", "outcomes": {<model that answered>: rating},
"route"}``. Prompts are in the log only if the service ran with SEMROUTE_LOG_PROMPTS=true.
Rebuild the index afterwards: the quality estimator learns from the new rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from service.tools.feedback import outcome_rows, read_records, report_unlogged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("log", type=Path, help="the decision log (SEMROUTE_DECISION_LOG)")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        print(f"no decision log at {args.log}", file=sys.stderr)
        return 2
    rows, missing = outcome_rows(read_records(args.log))
    report_unlogged(missing, "rating(s) have no logged prompt or model")
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    print(f"{len(rows)} outcome row(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
