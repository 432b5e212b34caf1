"""Hostile model files for the confinement tests: each payload, if it ran with the
server's rights, would create ``marker`` (a path outside the worker's scratch)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np


class _OpenMarker:
    """Pickled, this opens the marker file for writing on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickled_payload(path: Path, marker: Path) -> Path:
    """A torch.save file whose unpickling writes ``marker``."""
    import torch

    torch.save({"model": _OpenMarker(marker)}, path)
    return path


def _ts_writer_class():
    import torch

    class FileWriter(torch.nn.Module):
        """TorchScript whose forward writes a file through a shared mapping."""

        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = torch.from_file(self.path, shared=True, size=4, dtype=torch.uint8)
            t.fill_(65)
            return self.lin(x.mean(dim=(2, 3))) + t.float().sum() * 0

    return FileWriter


def torchscript_writer(path: Path, marker: Path) -> Path:
    import torch

    module = torch.jit.script(_ts_writer_class()(str(marker)))
    torch.jit.save(module, str(path))
    return path


def _tiny_program(path: Path) -> None:
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3)).eval()
    program = torch.export.export(model, (torch.zeros(1, 3, 8, 8),))
    torch.export.save(program, str(path))


def pt2_with_pickled_member(path: Path, marker: Path) -> Path:
    """An honest .pt2 whose sample-inputs member is replaced by a pickle payload."""
    import torch

    honest = path.with_name("honest.pt2")
    _tiny_program(honest)
    payload = io.BytesIO()
    torch.save((_OpenMarker(marker),), payload)
    with zipfile.ZipFile(honest) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = payload.getvalue() if info.filename.endswith("sample_inputs/model.pt") else src.read(info)
            dst.writestr(info, data)
    return path


def savedmodel_writer(folder: Path, marker: Path) -> Path:
    """A SavedModel whose serving graph writes ``marker`` with tf.io.write_file."""
    import tensorflow as tf

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(marker), "pwned")
            return {"out": tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2]))}

    module = Writer()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def onnx_model(path: Path, extra_nodes, extra_inits, scalar: str) -> Path:
    """A 3-class ONNX classifier of 8x8 RGB images whose output adds 0 x ``scalar``,
    a value computed by ``extra_nodes`` (so they must run)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("Mul", [scalar, "zero"], ["z"]),
        helper.make_node("Add", ["m", "z"], ["y"]),
        *extra_nodes,
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        *extra_inits,
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def onnx_endless_loop(path: Path) -> Path:
    """A tiny ONNX file with a Loop of 10^15 iterations."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    loop = helper.make_node("Loop", ["trips", "cond", "v0"], ["v"], body=body)
    inits = [helper.make_tensor("trips", TensorProto.INT64, [], [10**15]),
             helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
             helper.make_tensor("v0", TensorProto.FLOAT, [], [0.0])]
    return onnx_model(path, [loop], inits, "v")


def onnx_slow_beyond_probe(path: Path) -> Path:
    """An ONNX file that answers the 2-item probe at once but loops 10^12 times
    per item beyond two: honest at calibration, endless on a real batch."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "first"], ["n"], axis=0),
             helper.make_node("Sub", ["n", "two"], ["extra"]),
             helper.make_node("Max", ["extra", "none"], ["extra0"]),
             helper.make_node("Mul", ["extra0", "trillion"], ["trips"]),
             helper.make_node("Loop", ["trips", "cond", "v0"], ["v"], body=body)]
    inits = [helper.make_tensor("first", TensorProto.INT64, [], [0]),
             helper.make_tensor("two", TensorProto.INT64, [], [2]),
             helper.make_tensor("none", TensorProto.INT64, [], [0]),
             helper.make_tensor("trillion", TensorProto.INT64, [], [10**12]),
             helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
             helper.make_tensor("v0", TensorProto.FLOAT, [], [0.0])]
    return onnx_model(path, nodes, inits, "v")


def onnx_memory_bomb(path: Path, gigabytes: float = 3.0) -> Path:
    """A tiny ONNX file that fills a tensor of ``gigabytes`` on every call."""
    from onnx import TensorProto, helper

    n = int(gigabytes * 2**30 / 4)
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceMax", ["big"], ["s"], keepdims=0)]
    return onnx_model(path, nodes, [helper.make_tensor("shape", TensorProto.INT64, [1], [n])], "s")


def honest_onnx(path: Path) -> Path:
    from onnx import helper

    return onnx_model(path, [helper.make_node("Identity", ["zero"], ["c"])], [], "c")


def random_image(seed: int = 0, size: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
