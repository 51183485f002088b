"""The DARWIN graph for LangGraph server / Studio (`langgraph dev` in this folder).

Importing this module loads no weights: models named by ``DARWIN_MODEL`` and
``DARWIN_REWARD_MODEL`` (default: the embedded SmolLM2 and the offline proxy reward) load on
the first run. Input: ``{"conversation": [{"role": "user", "content": "..."}], "config": {...}}``
with any DARWIN knobs in ``config``.
"""

from langgraph.graph.state import CompiledStateGraph

from langchain_darwin.graph.builder import build_darwin_graph
from langchain_darwin.graph.deployment import ServedContexts, ServedSettings


def make_graph() -> CompiledStateGraph:
    return build_darwin_graph(context=ServedContexts(ServedSettings.from_env())).compile()
