"""The checkpoint file: one ``.npz`` holding the weights, the optimizer's velocities, the mean
image, and a JSON ``meta`` record (config, epoch, step, learning rate, schedule state, running
sums of the epoch in progress). Where checkpoints live in a run folder is :mod:`zfraw.rundir`'s
business; this module only writes and reads one file.

Written atomically (:mod:`zfraw.atomic`: a temporary file in the same folder, fsync, then a
rename), so a run killed while saving leaves the previous checkpoint intact; the temporary file
is removed on every failure (a full disk, an interrupt), and the error names the file and says
what was kept (:func:`write_error`). Reading checks the whole file (every array is read, so the
zip's CRC of each is verified) and turns any damage into a :class:`CheckpointError` that names
the file; a file that is not a checkpoint at all (an .npy array, a pickle, a text file, another
.npz) is called that, and no pickle is ever loaded.

Keys: ``net/<layer>.<param>`` (and dropout counters, from ``net.state_dict()``),
``velocity/<layer>.<param>``, ``mean`` float32 (S, S, 3), ``meta`` (a JSON string).
"""
from __future__ import annotations

import errno
import json
import os
import zipfile
import zlib

import numpy as np

from .atomic import atomic_open

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or of another format; the message names it."""


# The errors of a device that cannot take the writes (rather than of a path the user gave):
# commands answer them with exit status 1, and a bad path with 2.
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def write_error(path, error: OSError, kept: str) -> OSError:
    """The OSError to raise when writing ``path`` failed with ``error`` (a full disk, ...): the
    same errno, and a message (its ``strerror``) that names the file and says what was ``kept``.
    :func:`os_error_line` prints it."""
    if getattr(error, "zfraw_named", False):
        return error                      # named already, by a writer further down
    named = OSError(error.errno, f"cannot write {path} ({error.strerror or error}); {kept}",
                    str(path))
    named.zfraw_named = True
    return named


def os_error_line(error: OSError) -> str:
    """An OSError as one line for a command's ``error:`` message: its message, with the file
    it concerns when the message does not name it already."""
    text = error.strerror or str(error)
    name = error.filename
    return f"{text}: {name}" if name is not None and str(name) not in text else text


def save_checkpoint(path: str, net, opt, mean: np.ndarray, meta: dict) -> None:
    """Write ``net``, ``opt`` (an :class:`zfraw.optim.SGD`), ``mean`` and ``meta`` to ``path``.
    On a failure (a full disk) the previous file at ``path`` is left as it was, and the OSError
    says so and names ``path``."""
    opt_state = opt.state_dict()
    arrays = {f"net/{k}": v for k, v in net.state_dict().items()}
    arrays.update({f"velocity/{k}": v for k, v in opt_state["velocity"].items()})
    arrays["mean"] = np.asarray(mean, np.float32)
    record = dict(meta, format=FORMAT, opt={k: opt_state[k] for k in ("lr", "momentum", "weight_decay")})
    arrays["meta"] = np.array(json.dumps(record))
    try:
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        kept = ("the previous checkpoint there is unchanged" if os.path.isfile(path) else
                "no checkpoint had been written there yet")
        raise write_error(path, e, kept + " and no temporary file is left") from None


# What a damaged .npz raises while it is opened or read: a cut or overwritten zip (BadZipFile,
# EOFError, OSError), a wrong CRC (BadZipFile), bad compressed data (zlib.error), a mangled
# array header or meta record (ValueError, KeyError, JSONDecodeError is a ValueError).
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


# The first bytes of what a checkpoint is not (its own are a zip's, ZIP_MAGIC).
ZIP_MAGIC = b"PK\x03\x04"
_OTHER_KINDS = ((b"\x93NUMPY", "a NumPy .npy array"), (b"\x80", "a Python pickle"),
                (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
                (b"{", "a JSON file"))


def _not_a_checkpoint(path: str) -> str | None:
    """Why ``path`` is not a checkpoint at all (None: it is a zip archive, or empty, i.e.
    possibly a damaged checkpoint)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None                       # read below, and reported as damage
    if not head or head.startswith(ZIP_MAGIC):
        return None
    kind = next((what for magic, what in _OTHER_KINDS if head.startswith(magic)),
                "not a .npz (zip) archive")
    return f"{path} is not a zfraw checkpoint ({kind}; a checkpoint is the .npz a training writes)"


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint: {'net': state dict, 'opt': SGD state dict, 'mean': array, 'meta': dict}.
    Raises :class:`CheckpointError` naming ``path`` when it is missing, damaged or not ours.
    Nothing but plain arrays is read (no pickle, whatever the file holds)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    why = _not_a_checkpoint(path)
    if why:
        raise CheckpointError(why)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise CheckpointError(f"{path} is not a zfraw checkpoint (an .npz archive "
                                      f"without its meta record; it holds "
                                      f"{', '.join(z.files[:3]) or 'nothing'}"
                                      f"{', ...' if len(z.files) > 3 else ''})")
            meta = json.loads(str(z["meta"]))
            net = {k[4:]: z[k] for k in z.files if k.startswith("net/")}
            velocity = {k[9:]: z[k] for k in z.files if k.startswith("velocity/")}
            mean = z["mean"]
    except CheckpointError:
        raise
    except _DAMAGE as e:
        raise CheckpointError(f"{path} is damaged ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "opt" not in meta:
        raise CheckpointError(f"{path}: not a zfraw checkpoint of format {FORMAT}")
    return {"net": net, "opt": dict(meta["opt"], velocity=velocity), "mean": mean, "meta": meta}
