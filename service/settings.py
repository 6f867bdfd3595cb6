"""Service configuration, read once from the environment (prefix ``SEMROUTE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Everything an operator may tune; tests build their own instance instead of patching globals."""

    model_config = SettingsConfigDict(env_prefix="SEMROUTE_", extra="ignore")

    routes_dir: Path = Path("routes")
    index_dir: Path = Path("index")
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_device: str = "cpu"
    stale_index: Literal["refuse", "warn"] = Field(
        default="refuse",
        description="What to do when index/ was built from other routes or another model.",
    )
    top_k: int = Field(default=10, ge=1, le=1000)
    max_prompt_chars: int = Field(default=100_000, ge=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    encode_cache_size: int = Field(default=4096, ge=0)
    model_override: str | None = Field(
        default=None, description="Send every call (routes, fallbacks, tie-breaker) to this model."
    )
    llm_api_base: str | None = Field(
        default=None, description="OpenAI-compatible server that serves every call (local mode)."
    )
    llm_api_key: str | None = None
