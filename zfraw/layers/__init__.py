"""Hand-written layers: forward, backward and the paper's deconv, one small file each."""
from .activation import ReLU
from .avgpool import AvgPool2d, GlobalAvgPool2d
from .base import Layer
from .conv import Conv2d
from .dropout import Dropout
from .linear import Flatten, Linear
from .norm import LocalResponseNorm
from .pool import MaxPool2d

__all__ = ["Layer", "Conv2d", "ReLU", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d",
           "LocalResponseNorm", "Dropout", "Flatten", "Linear"]
