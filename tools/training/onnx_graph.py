"""Post-processing baked into an exported classifier's ONNX graph.

skl2onnx exports the scikit-learn estimator; these functions then add nodes to
that graph so that everything the classify stage needs comes out of one model
file whose sha256 the manifest pins:

* :func:`append_temperature` — the output ``probabilities`` becomes
  ``softmax(log(max(p, eps)) / T)`` (temperature scaling, Guo et al. 2017; same
  map as :func:`conveyor.processors.classify.calibration.apply_temperature`); the raw
  probabilities stay available as ``probabilities_uncalibrated``.
* :func:`append_mahalanobis` — a new output ``ood_score``: squared Mahalanobis
  distance of the input to the nearest class mean (Lee et al. 2018; same values
  as :meth:`conveyor.processors.classify.ood.MahalanobisScorer.score`, in float32).

Only standard ``ai.onnx`` operators of opset ≤ 17 are used (Max, Log, Mul,
Softmax, Sub, MatMul, ReduceSumSquare, Add, ReduceMin), so onnxruntime ≥ 1.18
runs the result. Node and tensor names are fixed, so the same inputs always give
the same bytes.
"""
from __future__ import annotations

import numpy as np

from conveyor.processors.classify.calibration import PROB_EPS
from conveyor.processors.classify.ood import MahalanobisScorer

PROBABILITIES = "probabilities"
UNCALIBRATED = "probabilities_uncalibrated"
OOD_SCORE = "ood_score"


def _const(graph, name: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name=name))
    return name


def _rename_tensor(graph, old: str, new: str) -> None:
    for node in graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    for out in graph.output:
        if out.name == old:
            out.name = new


def append_temperature(model, temperature: float, output: str = PROBABILITIES):
    """Replace ``output`` by its temperature-scaled version, in place; returns ``model``.

    Args:
        model: an ``onnx.ModelProto`` with a float output ``output`` of shape ``(n, k)``.
        temperature: ``T > 0`` (fitted on a validation split).

    Raises:
        ValueError: ``T <= 0`` or the graph has no output ``output``.
    """
    from onnx import TensorProto, helper

    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    graph = model.graph
    outs = {o.name: o for o in graph.output}
    if output not in outs:
        raise ValueError(f"graph has no output {output!r} (outputs: {sorted(outs)})")
    n_classes = outs[output].type.tensor_type.shape.dim[-1]
    _rename_tensor(graph, output, UNCALIBRATED)
    eps = _const(graph, "calibration_eps", np.array(PROB_EPS))
    inv_t = _const(graph, "calibration_inverse_temperature", np.array(1.0 / float(temperature)))
    graph.node.extend([
        helper.make_node("Max", [UNCALIBRATED, eps], ["calibration_clipped"], name="calibration_clip"),
        helper.make_node("Log", ["calibration_clipped"], ["calibration_log"], name="calibration_log"),
        helper.make_node("Mul", ["calibration_log", inv_t], ["calibration_scaled"], name="calibration_scale"),
        helper.make_node("Softmax", ["calibration_scaled"], [output], name="calibration_softmax", axis=-1),
    ])
    dims = [None, n_classes.dim_value or None]
    graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, dims))
    return model


def append_mahalanobis(model, scorer: MahalanobisScorer, input_name: str | None = None, output: str = OOD_SCORE):
    """Add the output ``output`` ``(n,)``: ``scorer.score`` of the graph input, in place.

    Args:
        model: an ``onnx.ModelProto`` whose (first, or ``input_name``) input is
            the float ``(n, d)`` embedding.
        scorer: fitted :class:`MahalanobisScorer` with ``d``-dimensional inputs.

    Returns:
        ``model``.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    x = input_name or graph.input[0].name
    c = _const(graph, "ood_center", scorer.center)
    w = _const(graph, "ood_whitening", scorer.whitening)
    m_t = _const(graph, "ood_means_t", scorer.means.T)
    m_sq = _const(graph, "ood_means_sq", (scorer.means.astype(np.float64) ** 2).sum(axis=1)[None, :])
    minus_two = _const(graph, "ood_minus_two", np.array(-2.0))
    zero = _const(graph, "ood_zero", np.array(0.0))
    graph.node.extend([
        helper.make_node("Sub", [x, c], ["ood_centered"], name="ood_center"),
        helper.make_node("MatMul", ["ood_centered", w], ["ood_z"], name="ood_whiten"),
        helper.make_node("ReduceSumSquare", ["ood_z"], ["ood_z_sq"], name="ood_norm", axes=[1], keepdims=1),
        helper.make_node("MatMul", ["ood_z", m_t], ["ood_dot"], name="ood_dot"),
        helper.make_node("Mul", ["ood_dot", minus_two], ["ood_cross"], name="ood_cross"),
        helper.make_node("Add", ["ood_cross", m_sq], ["ood_partial"], name="ood_partial"),
        helper.make_node("Add", ["ood_partial", "ood_z_sq"], ["ood_dist"], name="ood_dist"),
        helper.make_node("ReduceMin", ["ood_dist"], ["ood_min"], name="ood_min", axes=[1], keepdims=0),
        helper.make_node("Max", ["ood_min", zero], [output], name="ood_nonneg"),
    ])
    graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, [None]))
    return model


def drop_unused_initializers(model):
    """Remove initializers no node reads (skl2onnx leaves e.g. ``classes_ind`` behind,
    which onnxruntime warns about at every load), in place; returns ``model``."""
    graph = model.graph
    used = {i for node in graph.node for i in node.input} | {o.name for o in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model
