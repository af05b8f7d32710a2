"""The input convention of a net: how stored uint8 images become what the net was trained on.

An :class:`InputSpec` says, for images stored at ``size`` x ``size`` (shorter side resized to S,
centre square, as zfraw.data stores them)::

    net input = ((centre crop C of the pixels - mean) / std) * scale,  channels in ``order``

with ``mean`` a per-channel 3-vector or an (S, S, 3) per-pixel mean image and ``std`` a
per-channel 3-vector, both in 0..255 units and RGB order (the order of the stored images);
``order`` 'BGR' reverses the channels last, for nets trained by Caffe. The arithmetic is the
data package's one evaluation view (:func:`zfraw.data.transforms.eval_view`), so a zfraw run's
spec (its mean image and ``input_scale``) gives bit for bit its validation batches.

Presets (``--preprocess`` of ``python -m zfraw.report --model``; C from the net's input):

    caffe   BGR, 0..255 minus the ImageNet mean pixel (B, G, R) = (104, 117, 123)
    torch   RGB, (x/255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)
    none    RGB, 0..255 as stored
    zfraw   a zfraw run's: RGB minus its per-pixel mean image, times its input scale

The presets store at S = 256 for nets of input 224..256 (the model zoo's convention), else at
zfraw's C * 9/8 (:func:`zfraw.data.stored_size` with ``convention='zoo'``). ONNX files do not
say how their inputs were made; :func:`zfraw.nets.onnx.save_onnx` records a net's
``input_spec`` in the file's ``metadata_props`` (key ``zfraw.input_spec``, JSON) and
``load_onnx`` reads it back.
"""
from __future__ import annotations

import json

import numpy as np

from ..data.transforms import center_offset, eval_view, stored_size

PRESETS = ("caffe", "torch", "zfraw", "none")
ORDERS = ("RGB", "BGR")
METADATA_KEY = "zfraw.input_spec"

IMAGENET_BGR_MEAN = (104.0, 117.0, 123.0)                   # Caffe's mean pixel, B, G, R
TORCH_MEAN = (0.485, 0.456, 0.406)                          # torchvision, RGB, 0..1 units
TORCH_STD = (0.229, 0.224, 0.225)


class InputSpec:
    """size: stored side S; crop: net input side C <= S; order: 'RGB' or 'BGR' (the net's);
    mean: (3,) or (S, S, 3), RGB, 0..255 units (None: 0); std: (3,), 0..255 units (None: 1);
    scale: the final factor; name: the preset it came from (for the page)."""

    def __init__(self, size: int, crop: int, order: str = "RGB", mean=None, std=None,
                 scale: float = 1.0, name: str = "custom"):
        self.size, self.crop, self.name = int(size), int(crop), str(name)
        if not 0 < self.crop <= self.size:
            raise ValueError(f"crop {crop} must be in 1..{size} (the stored size)")
        if order not in ORDERS:
            raise ValueError(f"channel order {order!r}: choose RGB or BGR")
        self.order = order
        mean = np.zeros(3, np.float32) if mean is None else np.asarray(mean, np.float32)
        if mean.shape not in ((3,), (self.size, self.size, 3)):
            raise ValueError(f"mean of shape {mean.shape}: give a per-channel (3,) mean or an "
                             f"({self.size}, {self.size}, 3) mean image")
        self.mean = mean
        std = np.ones(3, np.float32) if std is None else np.asarray(std, np.float32)
        if std.shape != (3,) or not np.all(std > 0):
            raise ValueError(f"std must be three positive numbers, got {std.tolist()}")
        self.std = std
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"input scale must be positive, got {scale}")
        self.scale = float(scale)

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, crop: int, size: int | None = None, mean=None,
               scale: float = 1.0) -> "InputSpec":
        """A named convention for a net of input side ``crop``; ``mean`` and ``scale`` are
        'zfraw''s (its mean image or mean pixel, its input scale) and ignored otherwise."""
        size = stored_size(crop, convention="zoo") if size is None else size
        if name == "caffe":
            return cls(size, crop, "BGR", IMAGENET_BGR_MEAN[::-1], name=name)
        if name == "torch":
            return cls(size, crop, "RGB", 255 * np.asarray(TORCH_MEAN),
                       255 * np.asarray(TORCH_STD), name=name)
        if name == "none":
            return cls(size, crop, "RGB", name=name)
        if name == "zfraw":
            return cls(size, crop, "RGB", mean, scale=scale, name=name)
        raise ValueError(f"--preprocess {name!r}: choose one of {', '.join(PRESETS)}")

    @classmethod
    def zfraw(cls, mean, crop: int, scale: float = 1.0, size: int | None = None):
        """A zfraw run's convention: its (S, S, 3) mean image (None: 0 at ``size``) and its
        ``input_scale``."""
        if mean is not None:
            size = np.shape(mean)[0]
        if size is None:
            raise ValueError("InputSpec.zfraw: give the mean image or the stored size")
        return cls(size, crop, "RGB", mean, scale=scale, name="zfraw")

    # -- the transform and its inverse -------------------------------------------------------
    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) stored images -> float32 (N, 3, C, C) net inputs."""
        if images.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"images of shape {images.shape[1:]}, the input spec stores "
                             f"({self.size}, {self.size}, 3)")
        std = None if np.all(self.std == 1) else self.std
        return eval_view(images, self.mean, self.crop, self.scale, std=std, order=self.order)

    def mean_crop(self) -> np.ndarray:
        """The mean under the centre crop, RGB, (3, C, C) (or (3, 1, 1) for a mean pixel)."""
        if self.mean.ndim == 1:
            return self.mean.reshape(3, 1, 1)
        o, c = center_offset(self.size, self.crop), self.crop
        return self.mean[o:o + c, o:o + c].transpose(2, 0, 1)

    def invert(self, x) -> np.ndarray:
        """Net inputs (n, 3, C, C) (perhaps transformed or occluded) -> RGB 0..255 pixels."""
        x = np.asarray(x)
        if self.order == "BGR":
            x = x[:, ::-1]
        x = x / self.scale
        if not np.all(self.std == 1):
            x = x * self.std.reshape(3, 1, 1)
        return x + self.mean_crop()

    # -- description and storage ------------------------------------------------------------
    def formula(self) -> str:
        parts = "crop"
        if self.mean.ndim == 3 or np.any(self.mean):
            parts = f"({parts} - mean)"
        if not np.all(self.std == 1):
            parts = f"{parts} / std"
        if self.scale != 1:
            parts = f"{parts} * {self.scale:g}"
        return parts + (", channels reversed to BGR" if self.order == "BGR" else "")

    def rows(self) -> list:
        """[field, value] rows for the report page."""
        if self.mean.ndim == 3:
            avg = self.mean.reshape(-1, 3).mean(0)
            mean = (f"per-pixel mean image ({self.size}x{self.size}x3), channel averages R, G, B "
                    f"= {', '.join(f'{v:.2f}' for v in avg)}")
        else:
            mean = "R, G, B = " + ", ".join(f"{v:.3f}" for v in self.mean)
        std = "1 (none)" if np.all(self.std == 1) else \
            "R, G, B = " + ", ".join(f"{v:.3f}" for v in self.std)
        return [["preset", self.name], ["net channel order", self.order],
                ["stored side S (shorter side resized to S, centre square)", self.size],
                ["crop C (centre)", self.crop], ["mean (0..255 units)", mean],
                ["std (0..255 units)", std], ["scale", f"{self.scale:g}"],
                ["net input", self.formula()]]

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "crop": self.crop, "order": self.order,
                "mean": self.mean.tolist(), "std": self.std.tolist(), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(d["size"], d["crop"], d.get("order", "RGB"), d.get("mean"), d.get("std"),
                   d.get("scale", 1.0), d.get("name", "custom"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "InputSpec":
        return cls.from_dict(json.loads(text))

    def __eq__(self, other):
        return isinstance(other, InputSpec) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return (f"InputSpec({self.name}: S={self.size}, C={self.crop}, {self.order}, "
                f"{self.formula()})")


__all__ = ["InputSpec", "METADATA_KEY", "ORDERS", "PRESETS"]
