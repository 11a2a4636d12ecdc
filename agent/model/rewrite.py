"""Float-graph rewrites that pay on a CPU, applied to the part of the graph kept float.

onnxruntime computes a Softmax over an axis that is not the last one by transposing the
tensor there and back; for YOLO's DFL decode (a softmax over 16 bins of every box side
of 8,400 anchors, axis 1 of [1, 16, 4, 8400]) that cost 6-7 ms per frame here, about a
tenth of the whole model and more once the rest runs in INT8.  The same softmax written
as ReduceMax, Sub, Exp, ReduceSum and Div over that axis is the same arithmetic (the
max is subtracted just as the kernel does) and runs on the contiguous inner dimensions.
"""

from __future__ import annotations

from typing import Any

__all__ = ["softmax_inner_axes"]


def _rank(graph: Any, tensor: str) -> int | None:
    for info in (*graph.value_info, *graph.input, *graph.output):
        if info.name == tensor and info.type.tensor_type.HasField("shape"):
            return len(info.type.tensor_type.shape.dim)
    return None


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in {"", "ai.onnx"}), 0)


def softmax_inner_axes(model: Any, names: set[str]) -> list[str]:
    """Rewrite the Softmax nodes in ``names`` whose axis is not the last; their names.

    Needs shape information (``quant_pre_process`` adds it); a Softmax of unknown rank,
    on the last axis, or in a model older than opset 13 is left alone.
    """
    import onnx
    from onnx import helper

    graph, opset = model.graph, _opset(model)
    if opset < 13:
        return []
    done: list[str] = []
    for index in range(len(graph.node) - 1, -1, -1):
        node = graph.node[index]
        if node.op_type != "Softmax" or node.name not in names:
            continue
        rank = _rank(graph, node.input[0])
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        if rank is None or axis % rank == rank - 1:
            continue
        axis %= rank
        base, x, y = node.name, node.input[0], node.output[0]
        axes = onnx.numpy_helper.from_array(_axes(axis), f"{base}/axes")
        graph.initializer.append(axes)
        if opset >= 18:
            reduce_max = helper.make_node(
                "ReduceMax", [x, axes.name], [f"{base}/max"], f"{base}/ReduceMax", keepdims=1
            )
        else:
            reduce_max = helper.make_node(
                "ReduceMax", [x], [f"{base}/max"], f"{base}/ReduceMax", axes=[axis], keepdims=1
            )
        new = [
            reduce_max,
            helper.make_node("Sub", [x, f"{base}/max"], [f"{base}/shifted"], f"{base}/Sub"),
            helper.make_node("Exp", [f"{base}/shifted"], [f"{base}/exp"], f"{base}/Exp"),
            helper.make_node(
                "ReduceSum",
                [f"{base}/exp", axes.name],
                [f"{base}/sum"],
                f"{base}/ReduceSum",
                keepdims=1,
            ),
            helper.make_node("Div", [f"{base}/exp", f"{base}/sum"], [y], f"{base}/Div"),
        ]
        del graph.node[index]
        for offset, n in enumerate(new):
            graph.node.insert(index + offset, n)
        done.append(base)
    return done


def _axes(axis: int) -> Any:
    import numpy as np

    return np.array([axis], dtype=np.int64)
