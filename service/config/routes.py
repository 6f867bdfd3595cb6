"""Route files: the schema, loading and validation of ``routes/``, and the index fingerprint.

Every problem is reported with the file and the field it concerns, all at once, so that a
user fixing a route set sees the whole list instead of one error per run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from service.config.complexity_examples import COMPLEXITY_FILE
from service.config.dedup import normalise
from service.config.jsonl import text_rows
from service.config.outcomes import OutcomeDataError, OutcomeRow, outcome_files, read_outcome_files
from service.config.problems import Problem, ProblemsError
from service.config.rules import Rule, rule_route_problems
from service.config.tiers import TieredModel

ROUTER_FILE = "router.yaml"
CALIBRATION_FILE = "calibration.jsonl"
# Labels that mean "no route fits": reserved as route names, read as out of scope in data.
OUT_OF_SCOPE_LABELS = frozenset({"", "oos", "none", "out_of_scope", "no_route"})
ROUTE_NAME_PATTERN = re.compile(r"^[a-z0-9_-]+$")
MAX_UTTERANCE_CHARS = 2000
# A YAML scalar where a list belongs: what each list field should have held instead.
NOT_A_STRING = {
    "fallbacks": "must be a list of model strings, e.g. [openai/gpt-4.1]",
    "utterances": "must be a list of example prompts, not a single string",
    "wide_utterances": "must be a list of example prompts, not a single string",
}
# The keys of a route file that name a JSON-lines file of utterances, and the list each joins.
UTTERANCE_FILES = {"utterances_file": "utterances", "wide_utterances_file": "wide_utterances"}


def _model_string(value: str) -> str:
    value = value.strip()
    if not value or any(ch.isspace() for ch in value):
        raise ValueError("must be a litellm model string without spaces, e.g. openai/gpt-4.1-mini")
    return value


class Route(BaseModel):
    """One routing category, as written in ``routes/<name>.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = Field(min_length=1)
    model: str
    fallbacks: tuple[str, ...] = ()
    threshold: float | None = Field(default=None, gt=-1.0, le=1.0)
    reviewer: str | None = Field(
        default=None, description="A model that reviews and improves every answer of this route."
    )
    utterances: tuple[str, ...] = Field(min_length=1)
    utterances_file: str | None = Field(
        default=None,
        description='JSON lines of more example prompts ({"text": ...}), relative to routes/; '
        "read at load time and joined to 'utterances'.",
    )
    wide_utterances: tuple[str, ...] = Field(
        default=(),
        description="Example prompts that only the wide encoder's classifier learns from: "
        "requests in languages the embedding model cannot read. The embedding model's own "
        "classifier and index never see them, so no decision it makes alone (every English "
        "prompt's) changes with them; without a wide encoder they are unused.",
    )
    wide_utterances_file: str | None = Field(
        default=None,
        description="JSON lines of more wide-only example prompts, joined to 'wide_utterances'.",
    )
    models: tuple[TieredModel, ...] = Field(
        default=(),
        description="Tiered models for dynamic routing; 'model' defaults to the balanced one.",
    )

    @model_validator(mode="before")
    @classmethod
    def _model_from_tiers(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model" not in data and isinstance(data.get("models"), list):
            entries = [e for e in data["models"] if isinstance(e, dict) and "model" in e]
            preferred = [e for e in entries if e.get("tier") == "balanced"] or entries
            if preferred:
                data = {**data, "model": preferred[0]["model"]}
        return data

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, value: tuple[TieredModel, ...]) -> tuple[TieredModel, ...]:
        seen = [entry.model for entry in value]
        if len(set(seen)) != len(seen):
            raise ValueError("lists the same model twice")
        return value

    @field_validator("name")
    @classmethod
    def _name_pattern(cls, value: str) -> str:
        if not ROUTE_NAME_PATTERN.match(value):
            raise ValueError("must match [a-z0-9_-]+ (lower case letters, digits, '_' or '-')")
        if value in OUT_OF_SCOPE_LABELS:
            raise ValueError(f"'{value}' is reserved: it means 'no route' in calibration data")
        return value

    @field_validator("description")
    @classmethod
    def _description_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("model", "reviewer")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return None if value is None else _model_string(value)

    @field_validator("fallbacks", "utterances", "wide_utterances", mode="before")
    @classmethod
    def _a_list_not_a_string(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            raise ValueError(NOT_A_STRING[str(info.field_name)])
        return value

    @field_validator("fallbacks")
    @classmethod
    def _fallback_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_model_string(model) for model in value)

    @field_validator("utterances", "wide_utterances")
    @classmethod
    def _utterance_texts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = []
        for position, text in enumerate(value):
            text = text.strip()
            if not text:
                raise ValueError(f"item {position} is blank")
            if len(text) > MAX_UTTERANCE_CHARS:
                raise ValueError(f"item {position} is longer than {MAX_UTTERANCE_CHARS} characters")
            cleaned.append(text)
        return tuple(cleaned)


class TiebreakerConfig(BaseModel):
    """The small model that settles weak or close semantic matches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    timeout_s: float = Field(default=4.0, gt=0, le=120)
    max_candidates: int = Field(default=4, ge=2, le=20)
    cache_size: int = Field(default=2048, ge=0)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return _model_string(value)


class CooldownPolicy(BaseModel):
    """When a failing model is skipped, with litellm Router's semantics and defaults.

    More than ``allowed_fails`` failures that count (see ``service.state.cooldown``) within
    ``window_s`` of the first one put the model in cooldown for ``cooldown_s``: the chain
    skips it and goes on with the next model. ``cooldown_s: 0`` turns cooldowns off. The
    defaults are litellm's (``DEFAULT_ALLOWED_FAILS``, ``DEFAULT_COOLDOWN_TIME_SECONDS``; a
    test keeps them equal) and its per-minute failure window.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_fails: int = Field(default=3, ge=0, le=10_000)
    window_s: float = Field(default=60.0, gt=0, le=86_400)
    cooldown_s: float = Field(default=5.0, ge=0, le=86_400)


class CompletionPolicy(BaseModel):
    """How ``/complete`` spends its time: per-attempt timeout, overall deadline, escalation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempt_timeout_s: float = Field(default=30.0, gt=0, le=600)
    deadline_s: float = Field(default=90.0, gt=0, le=1800)
    num_retries: int = Field(default=0, ge=0, le=5)
    escalation_model: str | None = None
    min_truncated_chars: int = Field(
        default=20, ge=0, description="A reply cut off by max_tokens shorter than this is bad."
    )
    cooldown: CooldownPolicy = CooldownPolicy()

    @field_validator("escalation_model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        return None if value is None else _model_string(value)


class ModelParams(BaseModel):
    """Connection settings of one model string; keys are named by variable, never written here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_base: str | None = None
    api_key_env: str | None = Field(
        default=None, description="Environment variable that holds this model's API key."
    )


class RouterConfig(BaseModel):
    """Router-wide policy from ``routes/router.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_route: str
    default_threshold: float = Field(default=0.4, gt=-1.0, le=1.0)
    min_margin: float = Field(default=0.0, ge=0.0, le=2.0)
    scoring: Literal["classifier", "knn"] = Field(
        default="classifier",
        description="classifier: calibrated linear model over embeddings; knn: neighbour vote.",
    )
    classifier_c: float = Field(
        default=10.0,
        gt=0.0,
        description="Inverse regularisation strength of the route classifier (index build).",
    )
    knn_weight: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="classifier: share of the nearest-utterance vote in the route "
        "probabilities; it lets a route of a few utterances win next to routes of hundreds.",
    )
    accept_rate: float = Field(
        default=0.985,
        gt=0.5,
        lt=1.0,
        description="Share of held-out in-scope prompts the calibrated threshold accepts.",
    )
    tiebreaker: TiebreakerConfig | None = None
    undecided: Literal["default", "top"] = Field(
        default="default",
        description="Where a weak match goes when no tie-breaker settled it (none configured, "
        "disabled by the request, or failed): the default route, or the semantic top route. "
        "An explicit 'none' from the tie-breaker always means the default route.",
    )
    completion: CompletionPolicy = CompletionPolicy()
    models: dict[str, ModelParams] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = Field(
        default=(), description="Ordered rules checked before the semantic stage; first wins."
    )
    stickiness: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="A conversation leaves its route only for a semantic decision whose "
        "confidence (classifier) or margin (knn) reaches this.",
    )
    conversation_cache_size: int = Field(default=10_000, ge=0)
    cost_quality: float = Field(
        default=0.05,
        gt=0,
        description="Willingness to pay for quality among a route's models: USD per 1k tokens "
        "that one point of expected quality (0 -> 1) is worth; requests may set their own.",
    )


@dataclass(frozen=True)
class RouteSet:
    """A validated set of routes plus the router policy; the input of every later stage."""

    routes: tuple[Route, ...]
    config: RouterConfig
    # Labelled prompts (label None: no route fits) that calibrate the classifier.
    calibration: tuple[tuple[str, str | None], ...] = ()
    # Prompts labelled easy (0) or hard (1) that train the complexity estimate.
    complexity: tuple[tuple[str, int], ...] = ()
    # Per-prompt scores of models (routes/outcomes/*.jsonl) that train the quality estimate.
    outcomes: tuple[OutcomeRow, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(route.name for route in self.routes)

    def listed_models(self) -> list[str]:
        """Every model a route names (own model, tiered models, fallbacks), each once."""
        names = [
            model
            for route in self.routes
            for model in (route.model, *(entry.model for entry in route.models), *route.fallbacks)
        ]
        return list(dict.fromkeys(names))

    def get(self, name: str) -> Route | None:
        return next((route for route in self.routes if route.name == name), None)

    @property
    def default(self) -> Route:
        route = self.get(self.config.default_route)
        assert route is not None, "RouteSet invariant: the default route exists"
        return route

    def threshold(self, name: str) -> float:
        route = self.get(name)
        if route is None or route.threshold is None:
            return self.config.default_threshold
        return route.threshold


class RouteSetError(ProblemsError):
    """The route folder cannot be used; ``problems`` lists every reason."""

    what = "route set"


# libyaml's safe loader when PyYAML was built with it: the same documents, about ten times
# faster to parse than the pure-Python one (route files are read at every start and reload).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path, shown: str) -> tuple[Any, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [Problem(shown, "", "is not UTF-8 text")]
    except OSError as error:
        return None, [Problem(shown, "", f"cannot be read ({error.strerror})")]
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        return None, [Problem(shown, where, f"is not valid YAML ({reason})")]
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        return None, [Problem(shown, "", f"must hold a mapping of fields, but it is {kind}")]
    return data, []


def _pydantic_problems(shown: str, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "is required"
        problems.append(Problem(shown, field, message))
    return problems


def _read_utterance_file(
    routes_dir: Path, value: Any, route: str, shown: str, key: str = "utterances_file"
) -> tuple[list[str], list[Problem]]:
    """The texts of a route's utterance file (``key`` names which of ``UTTERANCE_FILES``);
    every bad line is named by file and line.

    A row may carry a ``label``; when it does, it must be the route's own name, so a file
    copied to the wrong route is caught instead of teaching the route another's prompts.
    Other keys (``source``, ``lang``) record provenance and are ignored here.
    """
    if not isinstance(value, str) or not value.strip():
        return [], [Problem(shown, key, "must be a path relative to routes/")]
    path = routes_dir / value
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], [Problem(shown, key, f"{where} does not exist")]
    except UnicodeDecodeError:
        return [], [Problem(where, "", "is not UTF-8 text")]
    except OSError as error:
        return [], [Problem(where, "", f"cannot be read ({error.strerror})")]
    texts: list[str] = []
    problems: list[Problem] = []
    for number, row, problem in text_rows(text):
        line = f"line {number}"
        if row is None:
            problems.append(Problem(where, line, problem or "unreadable"))
        elif not row["text"].strip():
            problems.append(Problem(where, line, "has an empty 'text'"))
        elif len(row["text"].strip()) > MAX_UTTERANCE_CHARS:
            problems.append(
                Problem(where, line, f"is longer than {MAX_UTTERANCE_CHARS} characters")
            )
        elif "label" in row and row["label"] != route:
            problems.append(
                Problem(
                    where, f"{line}.label", f"'{row['label']}' is not this file's route '{route}'"
                )
            )
        else:
            texts.append(row["text"].strip())
    if not texts and not problems:
        problems.append(Problem(where, "", "holds no utterance"))
    return texts, problems


def _load_route(path: Path, shown: str) -> tuple[Route | None, str, list[Problem]]:
    """The route of one file, the name it claims (kept when the file fails, so that what
    refers to that name is not reported a second time) and the file's problems."""
    data, problems = _read_yaml(path, shown)
    if data is None:
        return None, path.stem, problems
    data = {str(key): value for key, value in data.items()}
    data.setdefault("name", path.stem)
    name = str(data["name"])
    for key, field in UTTERANCE_FILES.items():
        if key not in data:
            continue
        texts, problems = _read_utterance_file(path.parent, data[key], name, shown, key)
        if problems:
            return None, name, problems
        inline = data.get(field) or []
        data[field] = [*inline, *texts] if isinstance(inline, list) else inline
    try:
        return Route.model_validate(data), name, []
    except ValidationError as error:
        return None, name, _pydantic_problems(shown, error)


def _cross_route_problems(routes: list[tuple[Route, str]]) -> list[Problem]:
    problems: list[Problem] = []
    names: dict[str, str] = {}
    owners: dict[str, str] = {}
    for route, shown in routes:
        if route.name in names:
            problems.append(
                Problem(shown, "name", f"'{route.name}' is already used by {names[route.name]}")
            )
            continue
        names[route.name] = shown
        seen_here: set[str] = set()
        listed = [
            (f"{field}.{position}", utterance)
            for field in UTTERANCE_FILES.values()
            for position, utterance in enumerate(getattr(route, field))
        ]
        for where, utterance in listed:
            key = normalise(utterance)
            if key in seen_here:
                problems.append(Problem(shown, where, f"duplicate utterance '{utterance}'"))
            elif key in owners:
                problems.append(
                    Problem(shown, where, f"'{utterance}' also belongs to route '{owners[key]}'")
                )
            seen_here.add(key)
            owners.setdefault(key, route.name)
    return problems


def load_route_set(routes_dir: Path) -> RouteSet:
    """Load and validate every route file of ``routes_dir`` plus its ``router.yaml``."""
    if not routes_dir.is_dir():
        raise RouteSetError([Problem(str(routes_dir), "", "is not a folder")])
    problems: list[Problem] = []
    routes: list[tuple[Route, str]] = []
    # Names of route files that failed: their own problems are reported, and the default
    # route, rules and calibration rows that name them are not reported again as unknown.
    unloaded: set[str] = set()
    paths = sorted(p for p in routes_dir.iterdir() if p.suffix in {".yaml", ".yml"})
    for path in paths:
        if path.name == ROUTER_FILE:
            continue
        shown = str(path)
        route, name, found = _load_route(path, shown)
        problems.extend(found)
        if route is not None:
            routes.append((route, shown))
        else:
            unloaded.add(name)
    problems.extend(_cross_route_problems(routes))

    router_path = routes_dir / ROUTER_FILE
    config: RouterConfig | None = None
    if not router_path.exists():
        problems.append(Problem(str(router_path), "", "is missing; it names the default route"))
    else:
        data, found = _read_yaml(router_path, str(router_path))
        problems.extend(found)
        if data is not None:
            try:
                config = RouterConfig.model_validate(data)
            except ValidationError as error:
                problems.extend(_pydantic_problems(str(router_path), error))
    if not routes and not problems:
        problems.append(Problem(str(routes_dir), "", "holds no route files (*.yaml)"))
    known = {route.name for route, _ in routes}
    named = known | unloaded
    if config is not None and routes and config.default_route not in named:
        problems.append(
            Problem(
                str(router_path),
                "default_route",
                f"'{config.default_route}' is not a route (known: {', '.join(sorted(known))})",
            )
        )
    if config is not None and routes:
        for field, message in rule_route_problems(config.rules, named):
            problems.append(Problem(str(router_path), field, message))
    complexity: list[tuple[str, int]] = []
    complexity_path = routes_dir / COMPLEXITY_FILE
    if complexity_path.exists():
        from service.config.complexity_examples import ComplexityDataError, read_labelled

        try:
            complexity = list(zip(*read_labelled(complexity_path), strict=True))
        except (ComplexityDataError, OSError, UnicodeDecodeError) as error:
            reason = str(error).removeprefix(f"{complexity_path}: ")
            problems.append(Problem(str(complexity_path), "", reason))
    calibration: list[tuple[str, str | None]] = []
    calibration_path = routes_dir / CALIBRATION_FILE
    if calibration_path.exists():
        calibration, found = _load_calibration(calibration_path, known, unloaded)
        problems.extend(found)
    outcomes: list[OutcomeRow] = []
    try:
        outcomes = read_outcome_files(outcome_files(routes_dir))
    except OutcomeDataError as error:
        problems.extend(error.problems)
    if problems:
        raise RouteSetError(problems)
    assert config is not None
    return RouteSet(
        routes=tuple(route for route, _ in routes),
        config=config,
        calibration=tuple(calibration),
        complexity=tuple(complexity),
        outcomes=tuple(outcomes),
    )


def _load_calibration(
    path: Path, known: set[str], unloaded: set[str]
) -> tuple[list[tuple[str, str | None]], list[Problem]]:
    """``{"text", "label"}`` lines; label "none" (or "oos") marks a prompt no route fits.

    Rows of a route whose file failed to load (``unloaded``) are skipped without a problem:
    that file's own problem says what is wrong, and the route set is rejected anyway."""
    examples: list[tuple[str, str | None]] = []
    problems: list[Problem] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        return [], [Problem(str(path), "", f"cannot be read ({error})")]
    for number, row, problem in text_rows("\n".join(lines)):
        where = f"line {number}"
        if row is None or not row["text"].strip():
            problems.append(Problem(str(path), where, problem or "needs a non-empty 'text'"))
            continue
        label = row.get("label")
        label = "" if label is None else str(label).strip()
        if label.casefold() in OUT_OF_SCOPE_LABELS:
            examples.append((row["text"].strip(), None))
        elif label in known:
            examples.append((row["text"].strip(), label))
        elif label not in unloaded:
            problems.append(
                Problem(str(path), f"{where}.label", f"'{label}' is not a route (or 'none')")
            )
    return examples, problems
