"""The zoo's trained PyTorch digits CNN and its exact Keras twin (same weights),
plus real digit images, for the Keras, ONNX and cross-framework tests."""

from __future__ import annotations

import functools

import numpy as np

DIGITS_SPEC_DICT = {"size": [32, 32], "mean": [0.5], "std": [0.5], "grayscale": True,
                    "labels": [str(i) for i in range(10)]}


@functools.lru_cache(maxsize=1)
def torch_digits():
    """The zoo's trained PyTorch DigitsCNN (logits), in eval mode."""
    from model_zoo.pretrained import own_model

    return own_model("digits_cnn").eval()


def keras_twin(torch_module):
    """A Keras model computing exactly what ``torch_module`` (a DigitsCNN) computes.

    Conv kernels go OIHW -> HWIO, the linear layer (out, in) -> (in, out); the
    network ends in global average pooling, so there is no flatten order to match.
    """
    from model_zoo.train_keras_digits_cnn import build_keras_digits_cnn

    model = build_keras_digits_cnn(10, softmax=False)
    convs = [m for m in torch_module.features if m.__class__.__name__ == "Conv2d"]
    for name, conv in zip(("conv1", "conv2", "conv3"), convs, strict=True):
        kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
        model.get_layer(name).set_weights([kernel, conv.bias.detach().numpy()])
    fc = torch_module.classifier
    model.get_layer("classifier").set_weights([fc.weight.detach().numpy().T, fc.bias.detach().numpy()])
    return model


def digit_images(n: int, offset: int = 0) -> list[np.ndarray]:
    """n real test digits as RGB uint8 32 x 32 images (the service's input type)."""
    from model_zoo.digits_data import digit_split

    _, x_test, _, y_test = digit_split(0)
    out = []
    for image in x_test[offset : offset + n]:
        u8 = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
        out.append(np.repeat(u8[..., None], 3, axis=-1))
    return out


def digit_labels(n: int, offset: int = 0) -> np.ndarray:
    from model_zoo.digits_data import digit_split

    return digit_split(0)[3][offset : offset + n]
