"""The served backend: DARWIN's policy and reward model on vLLM servers, over HTTP.

No torch here: the server runs the models (and their prefix caching); the client holds a
tokenizer (the ``tokenizers`` library and the chat template) and an HTTP connection pool.
"""

from langchain_darwin.served.errors import (
    ContextWindowExceeded,
    ModelNotServed,
    RequestFailed,
    ServedError,
    ServerUnreachable,
    TokenizerMismatch,
)

__all__ = [
    "ContextWindowExceeded",
    "ModelNotServed",
    "RequestFailed",
    "ServedError",
    "ServerUnreachable",
    "TokenizerMismatch",
]
