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
