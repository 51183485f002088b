"""build_darwin_graph(): the StateGraph wiring. The two loops of the method are conditional
edges: the replacement-period loop (select_replace -> decode_chunk while a beam is
unfinished) and the mutation-cycle loop (update_archive -> mutate while cycles remain)."""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from langchain_darwin.config import DarwinConfig
from langchain_darwin.graph import nodes
from langchain_darwin.graph.state import DarwinContext, DarwinState


def after_seed(state: DarwinState) -> Literal["mutate", "decode_chunk"]:
    return "mutate" if nodes.config_of(state).iterations > 0 else "decode_chunk"


def after_select_replace(state: DarwinState) -> Literal["decode_chunk", "update_archive"]:
    alive = any(not b["finished"] for b in state["beams"]) or not state["seed"]["finished"]
    return "decode_chunk" if alive else "update_archive"


def after_update_archive(state: DarwinState) -> Literal["mutate", "finish"]:
    more = state["cycle"] < nodes.config_of(state).iterations and state.get("stopped") is None
    return "mutate" if more else "finish"


def build_darwin_graph() -> StateGraph:
    """The DARWIN search as an uncompiled StateGraph (compile it with any checkpointer)."""
    graph = StateGraph(DarwinState, context_schema=DarwinContext)
    graph.add_node("seed", nodes.seed)
    graph.add_node("mutate", nodes.mutate)
    graph.add_node("decode_chunk", nodes.decode_chunk)
    graph.add_node("score", nodes.score)
    graph.add_node("select_replace", nodes.select_replace)
    graph.add_node("update_archive", nodes.update_archive)
    graph.add_node("finish", nodes.finish)
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
