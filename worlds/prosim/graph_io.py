"""The social graph of Study 3: a seeded Watts–Strogatz small world, or a file.

Files: an edge list (``.edgelist``, ``.txt``, ``.csv``, ``.tsv``: one edge per line, two node
names separated by whitespace or a comma; ``#`` starts a comment; a line with one name is a
node without edges; a first line ``source,target`` is a header) or GraphML (``.graphml``,
``.xml``). Nodes become agents in the order the file first names them; a graph with more
nodes than agents keeps the first ``agents`` (and the edges among them). An unknown format,
a line that is not one or two names, a self-loop, a
GraphML edge to an undeclared node, no nodes, or fewer nodes than agents: one line naming the
file (and line) and the fix.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx

from agora.engine.config import ConfigError
from agora.engine.seeding import Seeds
from agora.worlds.prosim.config import GraphConfig

EDGE_LIST_SUFFIXES = (".edgelist", ".txt", ".csv", ".tsv")
GRAPHML_SUFFIXES = (".graphml", ".xml")
_SPLIT = re.compile(r"[,\s]+")


def build_graph(
    config: GraphConfig, agents: int, seeds: Seeds, field: str = "world.graph"
) -> nx.Graph:
    """The run's graph on nodes 0 … agents − 1."""
    if config.file is None:
        if config.neighbours >= agents:
            raise ConfigError(
                f"{field}.neighbours: {config.neighbours} neighbours need more than "
                f"{agents} agents; lower it below world.agents"
            )
        graph: nx.Graph = nx.connected_watts_strogatz_graph(
            agents, config.neighbours, config.rewire, tries=1000, seed=seeds.integer("prosim-graph")
        )
        return graph
    return load_graph(config.file, agents, f"{field}.file")


def load_graph(path: str | Path, agents: int, field: str = "world.graph.file") -> nx.Graph:
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in EDGE_LIST_SUFFIXES + GRAPHML_SUFFIXES:
        known = ", ".join(EDGE_LIST_SUFFIXES + GRAPHML_SUFFIXES)
        raise ConfigError(
            f"{field}: {file}: unknown graph format {suffix or '(no suffix)'!r}; name it "
            f"with one of {known}"
        )
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{field}: no graph file {file}") from None
    except OSError as exc:
        raise ConfigError(f"{field}: {file} cannot be read ({exc})") from None
    where = f"{field}: {file}"
    nodes, edges = (
        _edge_list(data, where) if suffix in EDGE_LIST_SUFFIXES else _graphml(data, where)
    )
    if not nodes:
        raise ConfigError(f"{where}: the graph has no nodes; give at least {agents}")
    if len(nodes) < agents:
        raise ConfigError(
            f"{where}: {len(nodes)} nodes, fewer than world.agents = {agents}; add nodes or "
            f"set world.agents to {len(nodes)}"
        )
    index = {name: i for i, name in enumerate(nodes[:agents])}
    graph = nx.Graph()
    graph.add_nodes_from(range(agents))
    graph.add_edges_from((index[a], index[b]) for a, b in edges if a in index and b in index)
    return graph


def _edge_list(data: bytes, where: str) -> tuple[list[str], list[tuple[str, str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text ({exc})") from None
    nodes: dict[str, None] = {}
    edges: list[tuple[str, str]] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        names = [n for n in _SPLIT.split(content) if n]
        if not edges and not nodes and [n.lower() for n in names] == ["source", "target"]:
            continue  # a CSV header row, not an edge between nodes "source" and "target"
        if len(names) > 2:
            raise ConfigError(
                f"{where}:{line_number}: {len(names)} names ({content!r}); an edge is two "
                "node names, a lone node one"
            )
        if len(names) == 2 and names[0] == names[1]:
            raise ConfigError(
                f"{where}:{line_number}: a self-loop on {names[0]!r}; an edge joins two nodes"
            )
        for name in names:
            nodes.setdefault(name)
        if len(names) == 2:
            edges.append((names[0], names[1]))
    return list(nodes), edges


def _graphml(data: bytes, where: str) -> tuple[list[str], list[tuple[str, str]]]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfigError(f"{where}: not GraphML ({exc})") from None
    nodes: dict[str, None] = {}
    edges: list[tuple[str, str]] = []
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "node":
            name = element.get("id")
            if name is None:
                raise ConfigError(f"{where}: a <node> without an id; give every node an id")
            nodes.setdefault(name)
        elif tag == "edge":
            source, target = element.get("source"), element.get("target")
            if source is None or target is None:
                raise ConfigError(f"{where}: an <edge> without a source or a target")
            edges.append((source, target))
    for source, target in edges:
        for end in (source, target):
            if end not in nodes:
                raise ConfigError(
                    f"{where}: the edge {source!r}–{target!r} names node {end!r}, which the "
                    'file does not declare; add <node id="' + end + '"/> or drop the edge'
                )
        if source == target:
            raise ConfigError(f"{where}: a self-loop on {source!r}; an edge joins two nodes")
    return list(nodes), edges
