"""LLM-assisted tie-breaker: a small model picks one of the close candidate routes, or none.

The answer is constrained by a JSON schema whose enum holds only the candidates' names and
"none", validated again here (not every provider enforces schemas), bounded by a timeout,
and cached by normalised prompt so a repeated prompt costs one call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import litellm

from service.completion.chain import Call, content_of
from service.completion.providers import Endpoints
from service.config.dedup import normalise
from service.config.lru import LRU
from service.config.routes import Route, TiebreakerConfig
from service.encoding.encoder import clip_for_embedding
from service.routing.router import (
    NO_ROUTE,  # "no candidate fits", as opposed to None: "could not decide"
)

log = logging.getLogger("semroute.tiebreak")

MAX_PROMPT_CHARS = 2000
SYSTEM = (
    "You classify requests for an LLM router. Read the user's request and pick the one "
    'category whose description fits it best. If no category fits, answer "none". '
    'Reply with JSON only: {"route": "<category name>"}.'
)


def choice_schema(names: Sequence[str]) -> dict[str, Any]:
    """A response_format that allows exactly the candidate names and "none"."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "route_choice",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"route": {"type": "string", "enum": [*names, NO_ROUTE]}},
                "required": ["route"],
                "additionalProperties": False,
            },
        },
    }


def parse_choice(content: str | None, names: Sequence[str]) -> str | None:
    """The chosen name, NO_ROUTE, or None when the reply names nothing valid.

    JSON first; a model that ignored the schema is still understood when its reply names
    exactly one candidate.
    """
    text = (content or "").strip()
    try:
        data = json.loads(text.strip("`").removeprefix("json").strip())
        picked = data.get("route") if isinstance(data, dict) else data
        if isinstance(picked, str):
            picked = picked.strip()
            if picked in names or picked == NO_ROUTE:
                return picked
    except ValueError:
        pass
    if text.strip("\"'. ").casefold() == NO_ROUTE:
        return NO_ROUTE
    mentioned = [n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]
    return mentioned[0] if len(mentioned) == 1 else None


class LLMTiebreaker:
    """Implements the router's ``Tiebreaker`` seam with a litellm call."""

    def __init__(self, config: TiebreakerConfig, endpoints: Endpoints, call: Call | None = None):
        self.config = config
        self.endpoints = endpoints
        self._call: Call = call or litellm.acompletion
        self._cache: LRU[tuple[str, tuple[str, ...]], str] = LRU(config.cache_size)
        self.outcomes: Counter[str] = Counter()

    def _messages(self, text: str, candidates: Sequence[Route]) -> list[dict[str, str]]:
        listing = "\n".join(f"- {route.name}: {route.description}" for route in candidates)
        request = clip_for_embedding(text, MAX_PROMPT_CHARS)
        user = f'Categories:\n{listing}\n- {NO_ROUTE}: none of the above\n\nRequest:\n"""\n{request}\n"""'
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    async def choose(self, text: str, candidates: Sequence[Route]) -> str | None:
        shortlist = list(candidates)[: self.config.max_candidates]
        names = tuple(route.name for route in shortlist)
        key = (normalise(text), names)
        cached = self._cache.get(key)
        if cached is not None:
            self.outcomes["cache_hit"] += 1
            return cached
        picked = await self._ask(text, shortlist, names)
        if picked is not None:
            self._cache.put(key, picked)
        return picked

    async def _ask(self, text: str, shortlist: list[Route], names: tuple[str, ...]) -> str | None:
        model, connection = self.endpoints.resolve(self.config.model)
        missing = self.endpoints.missing_keys(self.config.model)
        if missing:
            self.outcomes["missing_api_key"] += 1
            log.warning("tie-breaker skipped: set %s", " or ".join(missing))
            return None
        try:
            response = await asyncio.wait_for(
                self._call(
                    model=model,
                    messages=self._messages(text, shortlist),
                    response_format=choice_schema(names),
                    temperature=0,
                    max_tokens=40,
                    timeout=self.config.timeout_s,
                    num_retries=0,  # a late answer is useless here; the default route waits
                    **connection,
                ),
                timeout=self.config.timeout_s,
            )
        except (TimeoutError, litellm.Timeout):
            self.outcomes["timeout"] += 1
            return None
        except Exception as error:
            self.outcomes["error"] += 1
            log.warning("tie-breaker call failed: %s", type(error).__name__)
            return None
        content, _, _ = content_of(response)
        picked = parse_choice(content, names)
        self.outcomes[
            "invalid" if picked is None else ("none" if picked == NO_ROUTE else "picked")
        ] += 1
        return picked
