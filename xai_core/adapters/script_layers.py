"""Layers of a TorchScript program, hookable like an nn.Module's.

A loaded TorchScript module (``torch.jit.script`` or ``torch.jit.trace``) keeps
its submodules, each with its own compiled ``forward``, but refuses Python
hooks. :func:`hookable` mirrors its module tree with plain ``nn.Module``
wrappers of the same names (``features.0``...), so forward hooks, pre-hooks and
captum's layer and neuron methods work on them unchanged.

A wrapper none of whose descendants has a hook runs its compiled ``forward`` as
it is. One with hooked descendants runs its forward graph in pieces: the graph's
top-level nodes are cut at each call of a hooked submodule (``prim::CallMethod``
of ``forward``, or of ``forward1``... where a traced module runs twice); each piece becomes a function of the values it needs from the
pieces before it, and each cut call goes through the submodule's wrapper, whose
hooks see (and may replace) its inputs and output. Gradients flow through the
pieces as through the program. Nothing is rewritten inside an operation: a call
inside a branch or a loop of the program is not cut, so its hooks do not fire,
and the adapter then says the layer was not used by the forward pass.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

_COUNTER = itertools.count()


def hookable(script: torch.jit.ScriptModule) -> ScriptLayer:
    """The wrapper tree of ``script`` (its root)."""
    return ScriptLayer(script)


def kind_of(module: nn.Module) -> str | None:
    """The class name a wrapped submodule had before it was compiled (Conv2d...)."""
    return module.original_name if isinstance(module, ScriptLayer) else None


class ScriptLayer(nn.Module):
    """One submodule of a TorchScript program, as a Python module: its children
    are the wrappers of its children; its parameters stay in the program."""

    def __init__(self, script: torch.jit.ScriptModule) -> None:
        super().__init__()
        object.__setattr__(self, "script", script)  # not a registered child: the tree stays the program's
        self.original_name = str(getattr(script, "original_name", type(script).__name__))
        self._plans: dict[tuple[str, ...], _Plan] = {}
        for name, child in script.named_children():
            self.add_module(name, ScriptLayer(child))

    @property
    def weight(self):
        """The program's own weight (a dense layer's, for the CAM)."""
        return getattr(self.script, "weight", None)

    def forward(self, *args):
        # the method a cut call names: a traced module called twice has forward and forward1
        method = self.__dict__.pop("_calling", "forward")
        hooked = tuple(path for path, module in self.named_modules() if path and _has_hooks(module))
        if not hooked:
            return getattr(self.script, method)(*args)
        plan = self._plans.get((method, *hooked))
        if plan is None:
            plan = self._plans[(method, *hooked)] = _Plan(self.script, method, hooked)
        return plan.run(self, args)

    def call(self, method: str, args: list):
        """Call the program's ``method`` (forward, or a traced module's forward1...)
        through this wrapper, so its hooks run."""
        self.__dict__["_calling"] = method
        return self(*args)


def _is_forward(method: str) -> bool:
    """``forward``, or ``forward1``, ``forward2``... (torch.jit.trace's name for the
    second, third... call of one module)."""
    return method == "forward" or method.startswith("forward") and method[7:].isdigit()


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or getattr(module, "_backward_pre_hooks", None))


class _Plan:
    """A forward graph cut at the top-level calls of the submodules whose subtree
    has a hook: pieces (functions of the module and the values they import) and,
    between them, the calls, made through the submodules' wrappers."""

    def __init__(self, script: torch.jit.ScriptModule, method: str, hooked: tuple[str, ...]) -> None:
        graph = getattr(script, method).graph.copy()
        paths, derivable = _inline_methods(graph, script, hooked)
        _name_values(graph)
        self.self_name = next(iter(graph.inputs())).debugName()
        self.args = [v.debugName() for v in list(graph.inputs())[1:]]
        paths, derivable = _module_paths(graph)
        nodes = list(graph.nodes())
        cuts = []
        for i, node in enumerate(nodes):
            if node.kind() != "prim::CallMethod" or not _is_forward(node.s("name")):
                continue
            path = paths.get(node.inputsAt(0).debugName())
            if path and any(h == path or h.startswith(path + ".") for h in hooked):
                if any(paths.get(v.debugName()) is not None for v in list(node.inputs())[1:]):
                    continue  # a module passed as an argument: left whole
                cuts.append((i, path, node, node.s("name")))
        used_at = _uses(graph, nodes)
        defined_at = {v.debugName(): -1 for v in graph.inputs()}
        for i, node in enumerate(nodes):
            for out in node.outputs():
                defined_at[out.debugName()] = i
        returned = [v.debugName() for v in graph.return_node().inputs()]
        cut_at = {i for i, *_ in cuts}
        cut_args = {i: [v.debugName() for v in list(node.inputs())[1:]] for i, _, node, _ in cuts}
        bounds = [-1] + [i for i, *_ in cuts] + [len(nodes)]
        self.steps: list[tuple] = []
        for k in range(len(bounds) - 1):
            start, stop = bounds[k] + 1, bounds[k + 1]
            imports = sorted(
                {name for name, where in defined_at.items()
                 if where < start and name != self.self_name and name not in derivable
                 and any(start <= u < stop for u in used_at.get(name, ()))
                 or (stop == len(nodes) and where < start and name in returned and name not in derivable
                     and name != self.self_name)},
                key=lambda n: (defined_at[n], n))
            exports = [name for name, where in defined_at.items()
                       if start <= where < stop and where not in cut_at
                       and (name not in derivable and any(u >= stop for u in used_at.get(name, ()))
                            or any(name in cut_args[c] for c in cut_at if c >= stop))]
            outputs = exports if stop < len(nodes) else returned
            self.steps.append(("piece", _piece(graph, start, stop, imports, outputs), imports, outputs))
            if stop < len(nodes):
                i, path, node, name = next(c for c in cuts if c[0] == stop)
                self.steps.append(("call", path, name, cut_args[i], node.output().debugName()))
        self.single = len(returned) == 1

    def run(self, owner: ScriptLayer, args: tuple):
        env = dict(zip(self.args, args, strict=True))
        result = None
        for step in self.steps:
            if step[0] == "piece":
                _, fn, imports, outputs = step
                got = fn(owner.script, *[env[n] for n in imports])
                if len(outputs) == 1:
                    got = (got,)
                env.update(zip(outputs, got or (), strict=True))
                result = got
            else:
                _, path, method, arg_names, out = step
                env[out] = owner.get_submodule(path).call(method, [env[n] for n in arg_names])
        return result[0] if self.single else tuple(result)


def _inline_methods(graph, script, hooked: tuple[str, ...]) -> tuple[dict[str, str], set[str]]:
    """Inline, at the top level of ``graph``, the calls of methods other than
    ``forward`` (``self._forward_impl(x)``) of modules whose subtree has a hook,
    so that the calls of hooked submodules they make can be cut. Returns
    :func:`_module_paths` of the result."""
    while True:
        paths, derivable = _module_paths(graph)
        for node in graph.nodes():
            if node.kind() != "prim::CallMethod" or _is_forward(node.s("name")):
                continue
            path = paths.get(node.inputsAt(0).debugName())
            if path is None or not any(path == "" or h == path or h.startswith(path + ".") for h in hooked):
                continue
            owner = script
            for part in path.split(".") if path else ():
                owner = getattr(owner, part)
            method = getattr(owner, node.s("name"))
            with graph.insert_point_guard(node):
                outs = graph.insertGraph(method.graph, list(node.inputs()))
            for old, new in zip(node.outputs(), outs, strict=True):
                old.replaceAllUsesWith(new)
            node.destroy()
            break
        else:
            return paths, derivable


def _name_values(graph) -> None:
    """Names of their own for the top-level values (a copy of the graph keeps
    names, not the numbers of unnamed values)."""
    values = list(graph.inputs()) + [out for node in graph.nodes() for out in node.outputs()]
    for k, value in enumerate(values):
        value.setDebugName(f"xai_v{k}")


def _module_paths(graph) -> tuple[dict[str, str], set[str]]:
    """Values naming submodules (``prim::GetAttr`` chains from ``self``) -> their
    dotted path; and every value the pieces may recompute themselves (constants,
    attribute reads of ``self``)."""
    inputs = list(graph.inputs())
    paths = {inputs[0].debugName(): ""}
    derivable = {inputs[0].debugName()}
    for node in graph.nodes():
        kind = node.kind()
        if kind == "prim::Constant":
            derivable.add(node.output().debugName())
        elif kind == "prim::GetAttr" and node.inputsAt(0).debugName() in derivable:
            name = node.output().debugName()
            derivable.add(name)
            parent = paths.get(node.inputsAt(0).debugName())
            if parent is not None and node.output().type().kind() == "ClassType":
                paths[name] = f"{parent}.{node.s('name')}" if parent else node.s("name")
    return paths, derivable


def _uses(graph, nodes) -> dict[str, list[int]]:
    """Value name -> the top-level node indices that use it (a use inside a branch
    or loop counts for the node that holds it; the return counts as len(nodes))."""
    used: dict[str, list[int]] = {}

    def walk(node, at: int) -> None:
        for v in node.inputs():
            used.setdefault(v.debugName(), []).append(at)
        for block in node.blocks():
            for inner in block.nodes():
                walk(inner, at)
            walk(block.returnNode(), at)

    for i, node in enumerate(nodes):
        walk(node, i)
    for v in graph.return_node().inputs():
        used.setdefault(v.debugName(), []).append(len(nodes))
    return used


def _piece(graph, start: int, stop: int, imports: list[str], outputs: list[str]):
    """A function (self, *imports) -> outputs running the top-level nodes start..stop."""
    g = graph.copy()
    values = {v.debugName(): v for v in g.inputs()}
    for node in g.nodes():
        for out in node.outputs():
            values[out.debugName()] = out
    old_inputs = list(g.inputs())
    for name in imports:
        new = g.addInput()
        value = values[name]
        new.setType(torch._C.TensorType.get() if value.type().kind() == "TensorType" else value.type())
        value.replaceAllUsesWith(new)
        values[name] = new
    while len(list(g.return_node().inputs())):
        g.eraseOutput(0)
    for name in outputs:
        g.registerOutput(values[name])
    nodes = list(g.nodes())
    for node in reversed(nodes[stop:]):
        node.destroy()
    for node in reversed(nodes[:start]):  # run by an earlier piece: only what is re-read stays
        if not any(list(out.uses()) for out in node.outputs()):
            node.destroy()
        elif node.kind() not in ("prim::Constant", "prim::GetAttr"):
            raise RuntimeError(f"a piece of the program would run {node.kind()} again")
    for i in range(len(old_inputs) - 1, 0, -1):
        if list(old_inputs[i].uses()):
            raise RuntimeError("a piece of the program still reads the original inputs")
        g.eraseInput(i)
    if len(outputs) != 1:
        g.makeMultiOutputIntoTuple()
    return torch._C._create_function_from_graph(f"xai_piece_{next(_COUNTER)}", g)
