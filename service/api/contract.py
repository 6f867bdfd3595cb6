"""The OpenAPI document as the running service really behaves: route names and keys included.

Pydantic models describe the shapes; two truths depend on the deployment and are added
here: which route names exist (an unknown one is a 400, so the schema lists the loaded
routes as an ``enum``, and follows a reload) and which endpoints need a bearer key. A
client generated from ``/openapi.json`` then never sends a request the schema allows and
the service refuses.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI

from service.api.auth import ADMIN_PREFIX, OPEN_PATHS

AUTO_MODEL = "auto"
ROUTE_FIELDS = (
    ("RouteRequest", "route"),
    ("CompleteRequest", "route"),
    ("FeedbackRequest", "correct_route"),
)
"""(component, property) pairs whose value must name a loaded route, when given."""
MODEL_FIELD = ("ChatCompletionRequest", "model")
"""The OpenAI-style ``model``: ``auto`` or a route name."""

SECURITY_SCHEMES = {
    "adminKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "SEMROUTE_ADMIN_KEY; without it configured the admin endpoints are off.",
    },
    "apiKey": {"type": "http", "scheme": "bearer", "description": "One of SEMROUTE_API_KEYS."},
}


def _name_choice(names: Sequence[str]) -> dict[str, Any]:
    return {"type": "string", "enum": list(names)}


def with_route_names(document: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A copy of ``document`` whose route-name fields accept only ``names``."""
    document = copy.deepcopy(document)
    schemas = document.get("components", {}).get("schemas", {})
    for component, field in ROUTE_FIELDS:
        prop = schemas.get(component, {}).get("properties", {}).get(field)
        if prop is None:
            continue
        branches = prop.get("anyOf", [prop])
        prop["anyOf"] = [
            _name_choice(names) if branch.get("type") == "string" else branch for branch in branches
        ]
        prop.pop("type", None)
    component, field = MODEL_FIELD
    model = schemas.get(component, {}).get("properties", {}).get(field)
    if model is not None:
        model["enum"] = [AUTO_MODEL, *names]
    return document


def with_security(document: dict[str, Any], api_keys: bool) -> dict[str, Any]:
    """A copy of ``document`` that says which operations need which bearer key (auth.py)."""
    document = copy.deepcopy(document)
    document.setdefault("components", {})["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    for path, operations in document.get("paths", {}).items():
        if path.startswith(ADMIN_PREFIX):
            scheme = "adminKey"
        elif api_keys and path not in OPEN_PATHS:
            scheme = "apiKey"
        else:
            continue
        for operation in operations.values():
            operation["security"] = [{scheme: []}]
    return document


def install_openapi(app: FastAPI, route_names: Callable[[], Sequence[str]], api_keys: bool) -> None:
    """Serve the document for the routes loaded now; rebuilt only when they change."""
    generic = app.openapi  # FastAPI's builder; it caches the model-only document on the app
    documents: dict[tuple[str, ...], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        names = tuple(route_names())
        if names not in documents:
            documents.clear()
            documents[names] = with_security(with_route_names(generic(), names), api_keys)
        return documents[names]

    app.openapi = openapi  # type: ignore[method-assign]
