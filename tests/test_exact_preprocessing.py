"""Photos reach a model exactly as its own world preprocesses them: Hugging Face's
PIL image processors (DeiT: resize 256 + centre crop 224, bicubic; ConvNeXt:
shortest edge 224 / crop_pct 0.875) and timm's eval transform (input size /
crop_pct, centre or squash, its interpolation, torchvision's centre crop) give the
same pixels (0 difference in 0..255) and the same probabilities (1e-5) as ours, on
photos whose odd margins put the crop where each world's rounding does. The map is
drawn on the crop's region of the photo, the margins dimmed, and results.json says
where the crop lies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xai_core.inputs.images import crop_box, load_image, preprocess
from xai_core.loading.models import SpecOverrides, open_model
from xai_core.types import ImageSpec, InputError, ModelLoadError

ROOT = Path(__file__).resolve().parents[1]
CAT = load_image(ROOT / "sample_images" / "chelsea_cat.jpg")  # 300 x 451
PHOTOS = [CAT, np.ascontiguousarray(CAT[:298]), np.ascontiguousarray(CAT[:, :211].transpose(1, 0, 2))]


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory) -> dict[str, Path]:
    """Tiny random DeiT (resize 256, crop 224, bicubic) and ConvNeXt (shortest edge 224,
    crop_pct 0.875) saved with save_pretrained, each with its PIL processor."""
    import torch
    from transformers import (
        ConvNextConfig,
        ConvNextForImageClassification,
        ConvNextImageProcessorPil,
        DeiTConfig,
        DeiTForImageClassificationWithTeacher,
        DeiTImageProcessorPil,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf_preprocessing")
    deit = root / "deit"
    DeiTForImageClassificationWithTeacher(DeiTConfig(
        image_size=224, patch_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=4)).save_pretrained(deit)
    DeiTImageProcessorPil(size={"height": 256, "width": 256}, crop_size={"height": 224, "width": 224},
                          do_center_crop=True, resample=3).save_pretrained(deit)
    convnext = root / "convnext"
    ConvNextForImageClassification(ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
                                                  num_labels=4)).save_pretrained(convnext)
    ConvNextImageProcessorPil(size={"shortest_edge": 224}, crop_pct=0.875).save_pretrained(convnext)
    folders = {"deit": deit, "convnext": convnext}
    # LeViT's processor (shortest edge x 256/224, then the crop) and PoolFormer's
    # (shortest edge / crop_pct, then the crop), each beside the DeiT's weights
    # and EfficientNet's (a fixed resize; its std divides twice, include_top; with
    # rescale_offset the pixels go to [-1, 1])
    from transformers import (
        EfficientNetImageProcessorPil,
        LevitImageProcessorPil,
        PoolFormerImageProcessorPil,
    )

    for name, processor in (("levit", LevitImageProcessorPil()),
                            ("poolformer", PoolFormerImageProcessorPil(crop_pct=0.9)),
                            ("efficientnet", EfficientNetImageProcessorPil(size={"height": 224, "width": 224})),
                            ("efficientnet_offset", EfficientNetImageProcessorPil(
                                size={"height": 256, "width": 256}, do_center_crop=True,
                                crop_size={"height": 224, "width": 224}, rescale_offset=True, include_top=False))):
        folders[name] = root / name
        DeiTForImageClassificationWithTeacher.from_pretrained(deit).save_pretrained(folders[name])
        processor.save_pretrained(folders[name])
    return folders


@pytest.mark.parametrize("name, resize", [("deit", (256, 256)), ("convnext", 256), ("levit", 256),
                                          ("poolformer", 248), ("efficientnet", None),
                                          ("efficientnet_offset", (256, 256))])
def test_hugging_face_processors_are_reproduced_exactly(hf_folders, name, resize):
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    folder = hf_folders[name]
    model = open_model(folder, engine="inprocess")
    assert model.spec.resize == resize and model.spec.interpolation == "bicubic" and model.spec.size == (224, 224)
    processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    reference = AutoModelForImageClassification.from_pretrained(folder).eval()
    for photo in PHOTOS:
        ours = preprocess(photo, model.spec)
        pixels = processor(images=photo, do_rescale=False, do_normalize=False, return_tensors="np",
                           **({"include_top": False} if name.startswith("efficientnet") else {}))["pixel_values"]
        assert np.abs(np.round(ours * 255) - pixels[0].transpose(1, 2, 0)).max() == 0.0
        with torch.no_grad():
            expected = torch.softmax(reference(**processor(images=photo, return_tensors="pt")).logits, -1)
        np.testing.assert_allclose(model.predict(ours[None])[0], expected.numpy()[0], atol=1e-5)


def test_a_processor_that_resizes_its_own_way_is_refused_unless_told(hf_folders, tmp_path):
    import json
    import shutil

    folder = tmp_path / "mobilevit"
    shutil.copytree(hf_folders["deit"], folder)
    proc = json.loads((folder / "preprocessor_config.json").read_text())
    mobilevit = proc | {"image_processor_type": "MobileViTImageProcessor"}
    told_resize = SpecOverrides(resize=256, interpolation="bicubic")
    (folder / "preprocessor_config.json").write_text(json.dumps(mobilevit | {"do_flip_channel_order": False}))
    with pytest.raises(ModelLoadError, match="resizes its own way.*--resize"):
        open_model(folder, engine="inprocess")
    told = open_model(folder, engine="inprocess", overrides=told_resize)
    assert told.spec.resize == 256 and told.spec.interpolation == "bicubic"
    # MobileViT's own default feeds BGR: no resize the user gives makes that right
    (folder / "preprocessor_config.json").write_text(json.dumps(mobilevit))
    for overrides in (None, told_resize):
        with pytest.raises(ModelLoadError, match="feeds the model BGR"):
            open_model(folder, engine="inprocess", overrides=overrides)
    (folder / "preprocessor_config.json").write_text(json.dumps(proc | {"auto_map": {"AutoImageProcessor": "x.Y"}}))
    with pytest.raises(ModelLoadError, match="preprocessor_config.json asks for custom code"):
        open_model(folder, engine="inprocess")


@pytest.fixture(scope="module")
def timm_folders(tmp_path_factory) -> dict[str, Path]:
    """timm's tiny test_convnext with crop_pct 0.875 (centre) and 0.9 (squash), saved
    as timm folders (save_for_hf), with 3 random classes."""
    import timm
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("timm_preprocessing")
    folders = {}
    for mode, overlay in (("center", {"crop_pct": 0.875}),
                          ("squash", {"crop_pct": 0.9, "crop_mode": "squash", "interpolation": "bilinear"})):
        model = timm.create_model("test_convnext", pretrained=False, num_classes=3, pretrained_cfg_overlay=overlay)
        timm.models.save_for_hf(model, root / mode, safe_serialization=True)
        folders[mode] = root / mode
    return folders


@pytest.mark.parametrize("mode, resize", [("center", 182), ("squash", (177, 177))])
def test_timm_data_config_is_reproduced_exactly(timm_folders, mode, resize):
    import timm
    import torch
    from PIL import Image

    folder = timm_folders[mode]
    model = open_model(folder, engine="inprocess")
    assert model.spec.resize == resize and model.spec.size == (160, 160) and model.spec.crop_rounding == "round"
    reference = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    config = timm.data.resolve_model_data_config(reference)
    transform = timm.data.create_transform(**config)
    unnormalised = timm.data.create_transform(**(config | {"mean": (0, 0, 0), "std": (1, 1, 1)}))
    for photo in PHOTOS:
        ours = preprocess(photo, model.spec)
        pixels = unnormalised(Image.fromarray(photo)).numpy().transpose(1, 2, 0)
        assert np.abs(np.round(ours * 255) - np.round(pixels * 255)).max() == 0.0
        with torch.no_grad():
            expected = torch.softmax(reference(transform(Image.fromarray(photo))[None]), -1).numpy()[0]
        np.testing.assert_allclose(model.predict(ours[None])[0], expected, atol=1e-5)


def test_crop_boxes_and_their_rounding():
    spec = ImageSpec((224, 224), resize=(256, 256))  # Hugging Face: floor
    assert crop_box(spec, 300, 451) == pytest.approx(
        {"left": 16 * 451 / 256, "top": 16 * 300 / 256, "right": 240 * 451 / 256, "bottom": 240 * 300 / 256,
         "width": 451, "height": 300})
    timm_spec = ImageSpec((160, 160), resize=182, crop_rounding="round")
    box = crop_box(timm_spec, 298, 451)  # 182 x 275: torchvision rounds the odd margin 115 to 58 on the left
    assert box["top"] == pytest.approx(11 * 298 / 182) and box["left"] == pytest.approx(58 * 451 / 275)
    whole = crop_box(ImageSpec((32, 32)), 300, 451)
    assert (whole["left"], whole["top"], whole["right"], whole["bottom"]) == (0, 0, 451, 300)
    with pytest.raises(InputError, match="smaller than the 224x224 centre crop"):
        ImageSpec((224, 224), resize=200)
    assert ImageSpec.from_dict(spec.to_dict()) == spec and "resize" not in ImageSpec().to_dict()


def test_map_is_drawn_on_the_crop_and_recorded(hf_folders, tmp_path):
    from xai_core import explain, render

    model = open_model(hf_folders["convnext"], engine="inprocess")
    result = explain(model, CAT, "grad_cam")
    box = result.record()["input_boxes"][0]
    assert box == pytest.approx(crop_box(model.spec, 300, 451))
    assert result.attribution.shape == (224, 224)
    drawn = render.overlay(CAT, result).astype(int)
    left = int(round(box["left"]))
    np.testing.assert_allclose(drawn[:, : left - 1], CAT[:, : left - 1] * 0.35, atol=1)  # the margin dimmed
    assert not np.array_equal(drawn[:, left + 5: int(box["right"]) - 5], CAT[:, left + 5: int(box["right"]) - 5])


@pytest.mark.parametrize("name", ["digits_vit", "digits_convnext"])
def test_zoo_entries_declare_what_their_folders_preprocess(name):
    """The dashboard fills its form from the zoo entry; the command line opens the
    folder: both must resize and crop alike."""
    import model_zoo

    assert open_model(name, engine="inprocess").spec == model_zoo.ZOO[name].spec


def test_resize_flags_and_the_reproduce_command():
    from ui.reproduce import resize_text
    from xai_core.cli.common import resize

    assert (resize("none"), resize("256"), resize("256,320")) == (0, 256, (256, 320))
    with pytest.raises(InputError, match="--resize must be"):
        resize("big")
    spec = SpecOverrides(resize=256, interpolation="bicubic").apply(ImageSpec((224, 224)))
    assert (spec.resize, spec.interpolation) == (256, "bicubic") and resize_text(spec) == "256"
    assert SpecOverrides(resize=0).apply(spec).resize is None
    with pytest.raises(InputError, match="smaller than the 320x320 centre crop"):
        SpecOverrides(size=(320, 320)).apply(spec)
