"""Architectures that a bare PyTorch ``state_dict`` can be loaded into.

Names: every torchvision classification model (``resnet18``, ``mobilenet_v2``,
``vgg16``, ...), plus the zoo's own ``digits_cnn`` and ``efficientnet_lite0``.
"""

from __future__ import annotations

from torch import nn

from xai_core.types import ModelLoadError

OWN_ARCHITECTURES = ("digits_cnn", "efficientnet_lite0")


class DigitsCNN(nn.Module):
    """Small CNN for 32 x 32 grayscale digits; ends in global average pooling (CAM-ready)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 16 x 16
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8 x 8
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(x)


def torchvision_classifiers() -> list[str]:
    from torchvision import models

    return sorted(models.list_models(module=models))


def architecture_names() -> list[str]:
    return list(OWN_ARCHITECTURES) + torchvision_classifiers()


def build_architecture(name: str, num_classes: int = 1000) -> nn.Module:
    """An untrained module of architecture ``name`` with ``num_classes`` outputs."""
    if name == "digits_cnn":
        return DigitsCNN(num_classes)
    if name == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
    tv = torchvision_classifiers()
    if name not in tv:
        raise ModelLoadError(
            f"unknown architecture {name!r}; choose one of: {', '.join(OWN_ARCHITECTURES)}, "
            f"or a torchvision classifier such as resnet18, resnet50, mobilenet_v2, vgg16"
        )
    from torchvision import models

    kwargs = {"weights": None, "num_classes": num_classes}
    if name.startswith("inception") or name.startswith("googlenet"):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = False
    return models.get_model(name, **kwargs)


# -- tabular ---------------------------------------------------------------------------
TABULAR_ARCHITECTURES = ("tabular_mlp", "titanic_mlp")


class TabularMLP(nn.Module):
    """MLP for one row of raw feature values -> class probabilities (or one score).

    Standardisation lives inside the model as fixed buffers (``norm_mean``,
    ``norm_std``), so the model takes the raw CSV values. Hidden layers are
    Linear + ReLU; with two or more outputs the last layer is followed by a softmax
    (probabilities out), with one output the raw score comes out (regression or a
    binary logit).
    """

    def __init__(
        self,
        in_features: int,
        hidden: tuple[int, ...] = (32, 16),
        num_outputs: int = 2,
        mean=None,
        std=None,
    ) -> None:
        super().__init__()
        import torch

        mean_t = torch.zeros(in_features) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        std_t = torch.ones(in_features) if std is None else torch.as_tensor(std, dtype=torch.float32)
        self.register_buffer("norm_mean", mean_t.reshape(in_features).clone())
        self.register_buffer("norm_std", std_t.reshape(in_features).clamp_min(1e-12).clone())
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_outputs))
        self.net = nn.Sequential(*layers)
        self.num_outputs = num_outputs

    def forward(self, x):
        z = self.net((x - self.norm_mean) / self.norm_std)
        return z.softmax(dim=1) if self.num_outputs >= 2 else z

    @classmethod
    def from_state_dict(cls, state: dict) -> TabularMLP:
        """Rebuild the layer sizes from the weights: in_features from the first
        Linear weight, hidden widths and outputs from the following ones."""
        linear = sorted(
            (int(k.split(".")[1]), v) for k, v in state.items()
            if k.startswith("net.") and k.endswith(".weight") and v.ndim == 2
        )
        if not linear:
            raise ModelLoadError("the weights hold no net.<i>.weight Linear layers; not a tabular_mlp state_dict")
        indices = [i for i, _ in linear]
        if indices != list(range(0, 2 * len(linear), 2)):
            raise ModelLoadError(f"tabular_mlp expects Linear layers at net.0, net.2, ...; found net.{indices}")
        in_features = int(linear[0][1].shape[1])
        hidden = tuple(int(w.shape[0]) for _, w in linear[:-1])
        return cls(in_features, hidden, int(linear[-1][1].shape[0]))


class TitanicMLP(nn.Module):
    """Captum's Titanic tutorial network: 12 features -> 12 -> 8 -> 2 classes, sigmoid
    hidden layers, softmax out; standardisation inside (fixed buffers), so it takes
    raw values. ``sigmoid1`` is the first hidden layer's output (12 units)."""

    def __init__(self, in_features: int = 12, mean=None, std=None) -> None:
        super().__init__()
        import torch

        mean_t = torch.zeros(in_features) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        std_t = torch.ones(in_features) if std is None else torch.as_tensor(std, dtype=torch.float32)
        self.register_buffer("norm_mean", mean_t.reshape(in_features).clone())
        self.register_buffer("norm_std", std_t.reshape(in_features).clamp_min(1e-12).clone())
        self.linear1 = nn.Linear(in_features, 12)
        self.sigmoid1 = nn.Sigmoid()
        self.linear2 = nn.Linear(12, 8)
        self.sigmoid2 = nn.Sigmoid()
        self.linear3 = nn.Linear(8, 2)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = (x - self.norm_mean) / self.norm_std
        return self.softmax(self.linear3(self.sigmoid2(self.linear2(self.sigmoid1(self.linear1(x))))))


def build_tabular_architecture(name: str, state: dict) -> nn.Module:
    """A tabular module of architecture ``name`` sized from ``state`` (not yet loaded)."""
    if name == "tabular_mlp":
        return TabularMLP.from_state_dict(state)
    if name == "titanic_mlp":
        weight = state.get("linear1.weight")
        if weight is None or weight.ndim != 2:
            raise ModelLoadError("the weights hold no linear1.weight; not a titanic_mlp state_dict")
        return TitanicMLP(int(weight.shape[1]))
    raise ModelLoadError(
        f"unknown tabular architecture {name!r}; choose one of: {', '.join(TABULAR_ARCHITECTURES)}"
    )
