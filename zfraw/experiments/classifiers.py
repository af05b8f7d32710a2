"""Classifiers on frozen features: a softmax (zfraw's own Linear layer, cross-entropy and SGD,
the paper's "new softmax on fixed layers") and a linear SVM (scikit-learn's LinearSVC, as the
paper's Table 7 uses one; scikit-learn is an optional extra, ``pip install zfraw[experiments]``).

Both see features scaled by one number, the mean L2 norm of the training features, so one
learning rate and one C suit every layer (a layer-1 vector and a layer-7 one differ in scale
by orders of magnitude); a single scale factor leaves what a linear classifier can separate
unchanged.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..data import mean_per_class_accuracy
from ..layers import Linear
from ..optim import SGD


def feature_scale(train_features: np.ndarray) -> float:
    """1 / the mean L2 norm of the training feature vectors (1 when they are all zero)."""
    norm = float(np.linalg.norm(train_features, axis=1).mean())
    return 1.0 / norm if norm > 0 else 1.0


def train_softmax(x: np.ndarray, y: np.ndarray, classes: int, epochs: int = 200,
                  lr: float = 0.5, weight_decay: float = 1e-4, batch_size: int = 256,
                  seed: int = 0) -> Linear:
    """A softmax classifier on features x (N, D) float32, labels y (N,): zfraw's Linear trained
    by SGD with momentum 0.9 on minibatches in a seeded order. Returns the layer (W (classes, D),
    b (classes,)). x is expected already scaled (see :func:`feature_scale`)."""
    x = np.ascontiguousarray(x, np.float32)
    layer = Linear(x.shape[1], classes)
    layer.name = "softmax"
    layer.params["W"][...] = 0.0          # a convex problem: zero is a fine start

    class _One:                            # the optimizer's view of a one-layer "net"
        def params_and_grads(self):
            for k in layer.params:
                yield f"softmax.{k}", layer.params[k], layer.grads[k]

    opt = SGD(_One(), lr, 0.9, weight_decay)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            _, probs = ops.softmax_xent(layer.forward(x[rows]), y[rows])
            layer.backward(ops.softmax_xent_bwd(probs, y[rows]), need_dx=False)
            opt.step()
    return layer


def softmax_accuracy(train_x, train_y, test_x, test_y, classes: int, **kw) -> float:
    """Mean per-class accuracy of :func:`train_softmax` on the test features."""
    s = feature_scale(train_x)
    layer = train_softmax(train_x * s, train_y, classes, **kw)
    pred = layer.forward(np.asarray(test_x * s, np.float32)).argmax(1)
    return mean_per_class_accuracy(pred, test_y, classes)


def svm_accuracy(train_x, train_y, test_x, test_y, classes: int, C: float = 1.0,
                 seed: int = 0) -> float:
    """Mean per-class accuracy of a linear SVM (one-vs-rest, scikit-learn's LinearSVC)."""
    try:
        from sklearn.svm import LinearSVC
    except ImportError:
        raise ValueError("the linear SVM needs scikit-learn: pip install 'zfraw[experiments]'") \
            from None
    s = feature_scale(train_x)
    svm = LinearSVC(C=C, random_state=seed, max_iter=5000)
    svm.fit(train_x * s, train_y)
    return mean_per_class_accuracy(svm.predict(test_x * s), test_y, classes)
