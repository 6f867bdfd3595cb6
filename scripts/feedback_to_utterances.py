"""Turn corrected decisions from the decision log into candidate utterances, per route.

python scripts/feedback_to_utterances.py decisions.jsonl                # YAML snippets on stdout
python scripts/feedback_to_utterances.py decisions.jsonl --routes routes  # skip known utterances

A correction is feedback whose ``correct_route`` differs from the decided route. Its prompt
is in the log only if the service ran with SEMROUTE_LOG_PROMPTS=true. Nothing is written into
routes/: review the snippets, paste the good ones, then rebuild the index.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.config.routes import RouteSetError, load_route_set
from service.tools.feedback import corrections, read_records, report_unlogged, utterance_snippets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("log", type=Path, help="the decision log (SEMROUTE_DECISION_LOG)")
    parser.add_argument(
        "--routes", type=Path, default=None, help="route folder whose utterances to leave out"
    )
    args = parser.parse_args(argv)
    if not args.log.is_file():
        print(f"no decision log at {args.log}", file=sys.stderr)
        return 2
    known: list[str] = []
    if args.routes is not None:
        try:
            known = [u for route in load_route_set(args.routes).routes for u in route.utterances]
        except RouteSetError as error:
            print(error, file=sys.stderr)
            return 2
    found, missing = corrections(read_records(args.log))
    report_unlogged(missing, "correction(s) have no logged prompt")
    snippets = utterance_snippets(found, known)
    if not snippets:
        print("no corrected decisions with new prompts", file=sys.stderr)
        return 0
    print(snippets, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
