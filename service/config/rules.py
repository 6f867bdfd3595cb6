"""Rule-based routing: ordered rules from ``router.yaml``, first match wins.

A rule names a route (and optionally one model) and a ``when`` block whose conditions must
all hold: request metadata equal to a value (or one of a list of values), the prompt's
length in approximate tokens, and a regular expression searched in the prompt. Rules are
checked before the semantic stage, so they cost no embedding.

Token counts are approximate: characters / 4 (rounded up), the same rule of thumb the
encoder uses to clip prompts. It needs no tokenizer, does not depend on which model the rule
sends the prompt to, and is within about 20 % of BPE counts on English text; a length rule
is a coarse guard (route very long prompts to a long-context model), not a billing tool.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CHARS_PER_TOKEN = 4
MetadataCondition = str | int | float | bool | None | list[str | int | float | bool | None]


def approximate_tokens(text: str) -> int:
    """Tokens of ``text`` as characters / 4, rounded up (see the module docstring)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class RuleWhen(BaseModel):
    """Conditions of one rule; every condition given must hold (an empty block never matches)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metadata: dict[str, MetadataCondition] = Field(
        default_factory=dict,
        description="Request metadata key -> required value, or a list of accepted values.",
    )
    min_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    regex: str | None = Field(
        default=None, description="Searched in the prompt (Python syntax, case-sensitive)."
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"is not a valid regular expression ({error})") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> RuleWhen:
        given = (self.metadata, self.min_tokens, self.max_tokens, self.regex)
        if not any(value not in (None, {}) for value in given):
            raise ValueError(
                "needs at least one condition (metadata, min_tokens, max_tokens, regex)"
            )
        if (
            self.min_tokens is not None
            and self.max_tokens is not None
            and self.min_tokens > self.max_tokens
        ):
            raise ValueError("min_tokens is larger than max_tokens")
        return self


class Rule(BaseModel):
    """One entry of ``rules:`` in ``router.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="Shown in the decision's reason.")
    when: RuleWhen
    route: str
    model: str | None = Field(
        default=None, description="Send to this model instead of the route's own choice."
    )

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(ch.isspace() for ch in value.strip())):
            raise ValueError("must be a litellm model string without spaces")
        return None if value is None else value.strip()


@dataclass(frozen=True)
class RuleMatch:
    """The first rule that matched: its position in ``rules:`` and the rule itself."""

    index: int
    rule: Rule

    @property
    def label(self) -> str:
        """e.g. ``rule 2 (free-tier)``: what the decision's reason shows."""
        return f"rule {self.index} ({self.rule.name})" if self.rule.name else f"rule {self.index}"


class RuleSet:
    """Compiled rules; ``match`` returns the first rule whose conditions all hold."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules = tuple(rules)
        self._patterns = [re.compile(r.when.regex) if r.when.regex else None for r in self.rules]

    def __bool__(self) -> bool:
        return bool(self.rules)

    def match(self, text: str, metadata: Mapping[str, Any]) -> RuleMatch | None:
        tokens: int | None = None
        for index, (rule, pattern) in enumerate(zip(self.rules, self._patterns, strict=True)):
            when = rule.when
            if not _metadata_matches(when.metadata, metadata):
                continue
            if when.min_tokens is not None or when.max_tokens is not None:
                tokens = approximate_tokens(text) if tokens is None else tokens
                if when.min_tokens is not None and tokens < when.min_tokens:
                    continue
                if when.max_tokens is not None and tokens > when.max_tokens:
                    continue
            if pattern is not None and not pattern.search(text):
                continue
            return RuleMatch(index, rule)
        return None


def _metadata_matches(wanted: Mapping[str, MetadataCondition], given: Mapping[str, Any]) -> bool:
    for key, accepted in wanted.items():
        if key not in given:
            return False
        options = accepted if isinstance(accepted, list) else [accepted]
        value = given[key]
        # bool is an int in Python: `true` must not match 1, while 1 matches 1.0.
        if not any(value == o and isinstance(value, bool) == isinstance(o, bool) for o in options):
            return False
    return True


def rule_route_problems(rules: Sequence[Rule], known: set[str]) -> list[tuple[str, str]]:
    """(field, message) for every rule that names a route that does not exist."""
    return [
        (
            f"rules.{index}.route",
            f"'{rule.route}' is not a route (known: {', '.join(sorted(known))})",
        )
        for index, rule in enumerate(rules)
        if rule.route not in known
    ]
