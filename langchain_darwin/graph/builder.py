"""build_darwin_graph(): the StateGraph wiring. The two loops of the method are conditional
edges: the replacement-period loop (select_replace -> decode_chunk while a beam is
unfinished) and the mutation-cycle loop (update_archive -> mutate while cycles remain)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph import nodes
from langchain_darwin.graph.state import DarwinContext, DarwinInput, DarwinOutput, DarwinState


def after_seed(state: DarwinState) -> Literal["mutate", "decode_chunk"]:
    return "mutate" if nodes.config_of(state).iterations > 0 else "decode_chunk"


def after_select_replace(state: DarwinState) -> Literal["decode_chunk", "update_archive"]:
    alive = any(not b["finished"] for b in state["beams"]) or not state["seed"]["finished"]
    return "decode_chunk" if alive else "update_archive"


def after_update_archive(state: DarwinState) -> Literal["mutate", "finish"]:
    more = state["cycle"] < nodes.config_of(state).iterations and state.get("stopped") is None
    return "mutate" if more else "finish"


ContextResolver = Callable[[Runtime[Any]], DarwinContext]


def _resolving(node: Callable[..., Any], resolve: ContextResolver) -> Callable[..., Any]:
    @functools.wraps(node)
    def run(state: DarwinState, runtime: Runtime[Any]) -> Any:
        return node(state, runtime.override(context=resolve(runtime)))

    return run


def build_darwin_graph(
    context: ContextResolver | None = None, context_schema: type[Any] = DarwinContext
) -> StateGraph[DarwinState, Any, DarwinInput, DarwinOutput]:
    """The DARWIN search as an uncompiled StateGraph (compile it with any checkpointer).

    Runs pass a :class:`DarwinContext`; a deployed graph, whose server builds the context
    from the request's JSON, passes the plain ``context_schema`` it accepts and ``context``
    to turn that into a DarwinContext (see ``deployment.py``).
    """
    graph = StateGraph(
        DarwinState,
        context_schema=context_schema,
        input_schema=DarwinInput,
        output_schema=DarwinOutput,
    )
    steps = [
        nodes.seed,
        nodes.mutate,
        nodes.decode_chunk,
        nodes.score,
        nodes.select_replace,
        nodes.update_archive,
        nodes.finish,
    ]
    for step in steps:
        graph.add_node(step.__name__, step if context is None else _resolving(step, context))
    graph.add_edge(START, "seed")
    graph.add_conditional_edges("seed", after_seed)
    graph.add_edge("mutate", "decode_chunk")
    graph.add_edge("decode_chunk", "score")
    graph.add_edge("score", "select_replace")
    graph.add_conditional_edges("select_replace", after_select_replace)
    graph.add_conditional_edges("update_archive", after_update_archive)
    graph.add_edge("finish", END)
    return graph


def recursion_limit(config: DarwinConfig) -> int:
    """Enough super-steps for every period of every cycle, with room to spare."""
    periods = -(-(config.max_tokens + config.look_ahead) // config.replacement_period) + 2
    per_cycle = 3 * periods + 2
    return (config.iterations + 1) * per_cycle + 10


#: The compiled graph's type: runs pass a DarwinContext.
DarwinGraph = CompiledStateGraph[DarwinState, DarwinContext, DarwinInput, DarwinOutput]

_GRAPH: DarwinGraph | None = None
_GRAPH_LOCK = threading.Lock()


def compiled_graph() -> DarwinGraph:
    """The DARWIN graph compiled once per process (it holds no models)."""
    global _GRAPH
    with _GRAPH_LOCK:
        if _GRAPH is None:
            _GRAPH = build_darwin_graph().compile()
        return _GRAPH
