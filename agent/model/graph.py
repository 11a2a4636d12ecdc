"""Which nodes of a detection graph must stay float, found by reading the graph.

A YOLO-style graph is a backbone and neck of Conv/SiLU blocks, a detection head of one
box conv and one class conv per scale, a *head Concat* that joins the scales' flattened
outputs, and after it the decode (DFL softmax, anchor arithmetic, stride multiply,
class sigmoid) and, for end-to-end models, the NMS tail (ArgMax, NonZero, GatherND,
NonMaxSuppression, TopK, GatherElements, ScatterND).  Everything from the head Concat
on mixes tensors of very different ranges (box pixels 0..640 next to scores 0..1) into
one tensor: one INT8 scale cannot hold both, so that region stays float.  It is cheap
(a few per cent of the model's time).  The head convs themselves produce the logits the
scores come from; they are the most sensitive layers and can be kept float too.

Node names differ between exporters and change in ``quant_pre_process``, so nothing here
looks at names: only at op types and the wiring.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["QUANTIZED_OPS", "FloatRegions", "float_regions", "name_nodes"]

# The op types whose INT8 kernels (or QDQ fusions) pay on a CPU; ASSETS.md measured that
# Conv alone is slower than FP32 because of the Q/DQ pairs around every SiLU.
QUANTIZED_OPS = ("Conv", "Mul", "Add", "Sigmoid", "Concat", "MaxPool", "Resize", "Split", "Slice")
# Ops that only exist in decode/NMS tails: the fallback when no head Concat is found.
TAIL_OPS = frozenset({"NonMaxSuppression", "TopK", "GatherElements", "NonZero", "ArgMax"})
# Ops a head output passes through between its conv and the head Concat.
PASS_THROUGH = frozenset({"Reshape", "Concat", "Transpose", "Flatten"})


@dataclass(frozen=True)
class FloatRegions:
    """Node names to keep float: ``tail`` always, ``head`` and ``stem`` when asked to."""

    head_concats: tuple[str, ...]
    tail: tuple[str, ...]
    head: tuple[str, ...]
    stem: tuple[str, ...] = ()


def name_nodes(graph: Any) -> None:
    """Give every unnamed node a unique name (the quantizer excludes nodes by name)."""
    used = {n.name for n in graph.node if n.name}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def _producers(nodes: Iterable[Any]) -> dict[str, Any]:
    return {out: n for n in nodes for out in n.output}


def _consumers(nodes: Iterable[Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = defaultdict(list)
    for n in nodes:
        for inp in n.input:
            found[inp].append(n)
    return found


def _reach(start: Iterable[Any], step: Callable[[Any], Iterable[Any]]) -> dict[str, Any]:
    """Every node reachable from ``start`` by ``step`` (its consumers, or its producers)."""
    seen: dict[str, Any] = {}
    todo = deque(start)
    while todo:
        node = todo.popleft()
        if node.name in seen:
            continue
        seen[node.name] = node
        todo.extend(step(node))
    return seen


def _descendants(start: Iterable[Any], consumers: dict[str, list[Any]]) -> list[Any]:
    return list(
        _reach(start, lambda n: (c for o in n.output for c in consumers.get(o, []))).values()
    )


def _image_dependent(graph: Any, consumers: dict[str, list[Any]]) -> set[str]:
    """Names of nodes whose values come from the image, not only from its shape.

    Anchor grids are built from ``Shape`` of a feature map: that is no image data.
    """
    seen: set[str] = set()
    todo = deque(n for i in graph.input for n in consumers.get(i.name, []))
    while todo:
        node = todo.popleft()
        if node.name in seen or node.op_type == "Shape":
            continue
        seen.add(node.name)
        for out in node.output:
            todo.extend(consumers.get(out, []))
    return seen


def _is_scale_branch(tensor: str, producers: dict[str, Any], image: set[str]) -> bool:
    """True when ``tensor`` is a flattened per-scale head output (Reshape of a conv map)."""
    node = producers.get(tensor)
    if node is None or node.op_type not in {"Reshape", "Flatten"}:
        return False
    src = producers.get(node.input[0])
    return src is not None and src.op_type in {"Conv", "Concat"} and src.name in image


def _head_concats(nodes: list[Any], producers: dict[str, Any], image: set[str]) -> list[Any]:
    """Concats joining two or more flattened per-scale head outputs.

    One in graphs that concat box and class maps per scale first (Ultralytics' NMS
    export), two (boxes, classes) in others.
    """
    return [
        n
        for n in nodes
        if n.op_type == "Concat"
        and len(n.input) >= 2
        and all(_is_scale_branch(t, producers, image) for t in n.input)
    ]


def _ancestors(start: Iterable[Any], producers: dict[str, Any]) -> dict[str, Any]:
    return _reach(start, lambda n: (producers[i] for i in n.input if i in producers))


def _head_convs(concat: Any, producers: dict[str, Any]) -> list[Any]:
    """The convs feeding the head Concat, and the per-scale Concat/Reshape between them."""
    found: dict[str, Any] = {}
    todo = deque(producers[t] for t in concat.input if t in producers)
    while todo:
        node = todo.popleft()
        if node.name in found:
            continue
        if node.op_type == "Conv":
            found[node.name] = node
        elif node.op_type in PASS_THROUGH:
            found[node.name] = node
            # A Reshape's second input is its target shape, not data.
            data = node.input if node.op_type == "Concat" else node.input[:1]
            todo.extend(producers[t] for t in data if t in producers)
    return list(found.values())


def _stem(graph: Any, consumers: dict[str, list[Any]]) -> tuple[str, ...]:
    """The convs reading the image itself, with the SiLU (Sigmoid, Mul) on their output.

    With 3 input channels such a conv has too short a reduction for INT8 kernels to pay:
    here it ran 2.7x slower than in FP32, and its SiLU and the image's QuantizeLinear cost
    as much again over the full-resolution map.
    """
    found: list[str] = []
    for inp in graph.input:
        for conv in consumers.get(inp.name, []):
            if conv.op_type != "Conv":
                continue
            found.append(conv.name)
            out = conv.output[0]
            for sig in consumers.get(out, []):
                muls = [
                    m
                    for m in consumers.get(sig.output[0], [])
                    if m.op_type == "Mul" and set(m.input) == {out, sig.output[0]}
                ]
                if sig.op_type == "Sigmoid" and muls:
                    found += [sig.name, *(m.name for m in muls)]
    return tuple(found)


def float_regions(graph: Any) -> FloatRegions:
    """The decode/NMS tail and the head of a detection graph (nodes must be named).

    The tail is every node that does not lead to a head Concat: the decode and NMS after
    it, and side branches such as anchor-grid arithmetic that feed the decode.
    """
    nodes = list(graph.node)
    producers, consumers = _producers(nodes), _consumers(nodes)
    concats = _head_concats(nodes, producers, _image_dependent(graph, consumers))
    if concats:
        feeding = {name: n for c in concats for name, n in _ancestors([c], producers).items()}
        for c in concats:
            feeding.pop(c.name, None)
        tail = [n.name for n in nodes if n.name not in feeding]
        head = {n.name for c in concats for n in _head_convs(c, producers)}
        return FloatRegions(
            tuple(c.name for c in concats),
            tuple(tail),
            tuple(n.name for n in nodes if n.name in head and n.name in feeding),
            _stem(graph, consumers),
        )
    # No recognisable head: keep at least the NMS-style tail float.
    tail = _descendants([n for n in nodes if n.op_type in TAIL_OPS], consumers)
    return FloatRegions((), tuple(n.name for n in tail), (), _stem(graph, consumers))
