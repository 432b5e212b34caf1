"""`models`, `methods` and `layers`: what the zoo, the explainers and a model offer."""

from __future__ import annotations

from pathlib import Path

from xai_core.cli.common import add_model_args, open_model_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the model zoo")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("methods", help="list explainers and their parameters")
    add_model_args(p, required=False)
    p.set_defaults(func=cmd_methods)
    p = sub.add_parser("layers", help="list a model's layers with their indices, kinds and output shapes")
    add_model_args(p)
    p.set_defaults(func=cmd_layers)


def cmd_models(args) -> int:
    import model_zoo

    for entry in model_zoo.ZOO.values():
        h, w = entry.spec.size
        offline = "offline" if entry.offline else "needs weights file"
        print(f"{entry.name:<20} {entry.framework:<11} {h}x{w}{' gray' if entry.spec.grayscale else ''}  "
              f"[{offline}]  {entry.description}")
    from model_zoo.tabular import TABULAR_ZOO

    print("\ntabular models (explain-tabular):")
    for name, tab in TABULAR_ZOO.items():
        print(f"{name:<24} {tab.framework:<6} {getattr(tab, 'description', '')}")
    return 0


def cmd_methods(args) -> int:
    from xai_core.explainers import REGISTRY

    adapter = open_model_from_args(args) if args.model else None
    for explainer in REGISTRY.values():
        if explainer.input_kind != "image":
            continue
        missing = explainer.missing_capabilities(adapter) if adapter else []
        status = f"  (not available: needs {', '.join(missing)})" if missing else ""
        print(f"{explainer.name:<22} {explainer.label}{status}")
        for p in explainer.param_infos():
            rng = ""
            if p.choices:
                rng = f" one of {'/'.join(map(str, p.choices))}"
            elif p.low is not None:
                rng = f" in [{p.low}, {p.high}]"
            print(f"    {p.name}={p.default}{rng}  {p.help}")
    return 0


def cmd_layers(args) -> int:
    from model_zoo.tabular import TABULAR_ZOO
    from xai_core.types import UnsupportedError

    if args.model in TABULAR_ZOO and not Path(args.model).exists():  # a table's model: rows have layers too
        from xai_core.loading.models import open_model

        adapter = open_model(args.model)
    else:
        adapter = open_model_from_args(args)
    layers = adapter.layers()
    if not layers:
        if getattr(adapter, "kind", "") == "torchscript":
            raise UnsupportedError(
                f"{adapter.name} is TorchScript and none of its layers can be read (a frozen or inlined "
                "program keeps no submodules). Save the model as a .pt2 torch.export program or a "
                "state_dict to use Grad-CAM"
            )
        raise UnsupportedError(f"{adapter.name} has no layer whose output is a feature map or a vector")
    default, why = adapter.default_cam_choice()
    print(f"{'index':>7}  {'layer':<40} {'kind':<24} {'output':<16} layout")
    for info in layers:
        mark = "  <- default for grad_cam and cam" if info.name == default else ""
        shape = "x".join(str(v) for v in info.output_shape)
        index = info.index if info.index is not None else "-"
        layout = info.layout.describe() if info.layout is not None else "?"
        print(f"{index:>7}  {info.name:<40} {info.kind:<24} {shape:<16} {layout}{mark}")
    print(f"\n{default} is picked for grad_cam and cam: {why}" if default
          else f"\nno layer is picked for grad_cam and cam: {why}")
    print("output: C x h x w for a map (whatever the layer's own layout), units for a vector; the CAMs and "
          "layer methods run only on layers whose layout is a map (or a vector, where a method takes one); "
          "see docs/layer-layouts.md")
    print("--layer takes a name or an index (PyTorch: position among the leaf modules of "
          "named_modules(); Keras: position in model.layers)")
    return 0
