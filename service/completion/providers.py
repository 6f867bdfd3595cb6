"""Where each model string is served: litellm keyword arguments and missing credentials.

Kept apart from the fallback chain so that the tie-breaker, the reviewer and every attempt
resolve a model the same way, including the local mode that points everything at one server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import litellm

from service.config.routes import ModelParams

LOCAL_API_KEY = "not-needed"


@dataclass(frozen=True)
class Endpoints:
    """Resolves model strings to litellm call arguments.

    ``override_model`` and ``override_api_base`` send every call to one OpenAI-compatible
    server (the offline local mode); otherwise the per-model ``models`` table of router.yaml
    applies, and litellm's own provider defaults for the rest.
    """

    models: Mapping[str, ModelParams] = field(default_factory=dict)
    override_model: str | None = None
    override_api_base: str | None = None
    override_api_key: str | None = None

    def resolve(self, model: str) -> tuple[str, dict[str, Any]]:
        """The model string to call and the connection kwargs for ``litellm.acompletion``."""
        target = self.override_model or model
        if self.override_api_base:
            return target, {
                "api_base": self.override_api_base,
                "api_key": self.override_api_key or LOCAL_API_KEY,
            }
        params = self.models.get(model)
        kwargs: dict[str, Any] = {}
        if params is not None:
            if params.api_base:
                kwargs["api_base"] = params.api_base
                # A self-hosted OpenAI-compatible server must not receive OPENAI_API_KEY.
                kwargs["api_key"] = LOCAL_API_KEY
            if params.api_key_env:
                key = os.environ.get(params.api_key_env)
                kwargs["api_key"] = key if key else None
        return target, {k: v for k, v in kwargs.items() if v is not None}

    def missing_keys(self, model: str) -> list[str]:
        """Environment variables that must be set before ``model`` can be called."""
        target, kwargs = self.resolve(model)
        if "api_key" in kwargs:
            return []
        params = self.models.get(model)
        if params is not None and params.api_key_env:
            return [params.api_key_env]
        try:
            report = litellm.validate_environment(model=target, api_base=kwargs.get("api_base"))
        except Exception:  # unknown provider: let the call itself report the problem
            return []
        if report.get("keys_in_environment"):
            return []
        return [str(key) for key in report.get("missing_keys", [])]
