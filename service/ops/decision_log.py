"""The decision log: one JSON line per decision, completion and feedback, joined by decision id.

Off unless ``SEMROUTE_DECISION_LOG`` names a file. Prompt text is written only with
``SEMROUTE_LOG_PROMPTS=true``. The decisions that feedback may name are remembered by the
state store (``service.state``), not here.

Record shapes (``type`` tells them apart):

    {"type": "decision", "decision_id", "ts", "endpoint", "route", "model", "method",
     "score", "confidence", "margin", "latency_ms", "prompt"?}
    {"type": "completion", "decision_id", "ts", "ok", "model", "latency_ms", "cost_usd",
     "usage", "attempts": [{"model", "role", "outcome", "error_type", "latency_ms"}]}
    {"type": "feedback", "decision_id", "ts", "route", "rating", "correct_route"}
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from service.completion.chain import ChainResult
from service.routing.types import Decision


class DecisionLog:
    """Appends records to a JSONL file, if any."""

    def __init__(self, path: Path | None, log_prompts: bool = False):
        self.path = path
        self.log_prompts = log_prompts
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        line = json.dumps({**record, "ts": round(time.time(), 3)}, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as sink:
            sink.write(line + "\n")

    def decided(self, decision: Decision, endpoint: str, prompt: str) -> None:
        record: dict[str, Any] = {
            "type": "decision",
            "decision_id": decision.decision_id,
            "endpoint": endpoint,
            **decision.model_dump(
                include={"route", "model", "method", "score", "confidence", "margin", "latency_ms"}
            ),
        }
        if self.log_prompts:
            record["prompt"] = prompt
        self._write(record)

    def completed(self, decision: Decision, result: ChainResult, latency_ms: float) -> None:
        usage = next((a.usage for a in reversed(result.attempts) if a.usage), None)
        costs = [a.cost_usd for a in result.attempts if a.cost_usd is not None]
        self._write(
            {
                "type": "completion",
                "decision_id": decision.decision_id,
                "ok": result.ok,
                "model": result.model,
                "latency_ms": round(latency_ms, 3),
                "cost_usd": round(sum(costs), 8) if costs else None,
                "usage": usage,
                "attempts": [
                    {
                        "model": a.model,
                        "role": a.role,
                        "outcome": a.outcome,
                        "error_type": a.error_type,
                        "latency_ms": a.latency_ms,
                    }
                    for a in result.attempts
                ],
            }
        )

    def feedback(
        self, decision_id: str, route: str, rating: float, correct_route: str | None
    ) -> None:
        self._write(
            {
                "type": "feedback",
                "decision_id": decision_id,
                "route": route,
                "rating": rating,
                "correct_route": correct_route,
            }
        )
