"""Data-parallel training and sharded analyses over MPI (NCCL for the gradients on GPUs).

    mpiexec -n 4 python train.py --arch zf-64 --batch-size 128 ...   # 4 ranks x 32 images

Started by ``mpiexec`` with more than one rank, :func:`world` returns a :class:`Team` (mpi4py is
imported then, and only then: a plain ``python train.py`` never touches MPI). The training loop
(:mod:`zfraw.training`) is written once, for a team: a plain process is a team of one
(:class:`Solo`, from :func:`team`), whose collectives have nobody to talk to. The loop asks the
team for five things, and nothing else changes:

- **the shard of each batch**: the epoch plan (order, crops, flips) is the single process's,
  a function of (seed, epoch); global batch ``s`` is ``order[s*B:(s+1)*B]`` and rank r takes
  the r-th of its ``size`` equal slices (:class:`ShardedLoader`). ``B`` must divide by the rank
  count. The validation set is cut into ``size`` contiguous pieces (:func:`shard_dataset`).
- **the gradient**: each rank's loss is the mean over its B/size images, so the mean over the
  global batch is the mean of the ranks' gradients: :class:`GradBuckets` sums them across ranks
  and divides by ``size``, in a few fused flat buffers (buckets of about 25 MB, the parameters'
  grads being views into them, so nothing is copied) rather than one call per parameter. Every
  rank then applies the same SGD step (and filter renormalization) to the same weights, so the
  weights stay equal bit for bit; :meth:`Team.check_in_step` verifies it at every epoch end.
- **the start**: the weights are broadcast from rank 0; each rank's dropout layers get their
  own seed (``seed + rank * RANK_SEED_STRIDE``), so the masks differ between ranks and are the
  same on every run and resume at that rank count.
- **the sums**: the running loss/correct/seen and the validation statistics are summed or
  gathered across ranks (the merge is exact: sums are sums, per-image statistics concatenate in
  rank order, so the validation metrics equal a single pass over the whole set).
- **agreement**: rank 0 alone takes the run folder's lock and writes config, metrics and
  checkpoints; a stop (Ctrl-C) is agreed at every step so that all ranks stop at the same step.

A rank that dies: ``mpiexec`` notices and kills the others (the MPI job ends with "BAD
TERMINATION ... KILLED BY SIGNAL"); a rank that fails with an error calls MPI_Abort, which does
the same. Checkpoints are replaced atomically by rank 0, so ``last.npz`` is always the last
whole one and ``--resume`` (at any rank count that divides the batch) continues from it.

On GPUs (``--device cuda``) each rank uses the GPU of its node-local rank and the gradient
buckets are summed by NCCL (``cupy.cuda.nccl``) on the device, queued on the current stream
(no host read). The buckets are reduced after the backward, not overlapped with it. This path
is written carefully but is untested on hardware (no GPU on the machine it was written on).

Sharded analyses: :func:`collect_topk_sharded` runs the top-k pass of Fig. 2 on a share of the
images on each rank (the batches :func:`dealt_batches` deals, as the atlas's pass does) and
merges with :func:`zfraw.viz.topk.merge_topk` (the top k of the ranks' top k's is the top k of
the whole set).
"""
from __future__ import annotations

import os
import pickle
import sys
import time

import numpy as np

from . import backend
from .data import BatchLoader
from .data.batches import _prefetch
from .data.transforms import crop_batch

# Environment variables that a launcher sets to the world size: MPICH/Intel MPI (hydra, PMI),
# Open MPI, MVAPICH. Checked before importing mpi4py so that a plain run never initialises MPI.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK",
                        "SLURM_LOCALID")
BUCKET_BYTES = 25 << 20          # as PyTorch DDP: few enough calls, small enough to pipeline
RANK_SEED_STRIDE = 1_000_000     # dropout layer seeds are seed*1000 + layer index (< 10^6)


def launched_size() -> int:
    """The world size the launcher announced in the environment (1 when none did)."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


_WORLD = []   # [Team or None] once asked


def world():
    """The :class:`Team` of this MPI job, or None when not started by an MPI launcher with more
    than one rank (then mpi4py is never imported). Raises RuntimeError when started with several
    ranks and mpi4py is missing."""
    if not _WORLD:
        team = None
        if launched_size() > 1:
            try:
                from mpi4py import MPI
            except ImportError:
                raise RuntimeError(f"started with {launched_size()} MPI ranks but mpi4py is not "
                                   "installed: pip install 'zfraw[mpi]' (mpi4py, mpich)") from None
            if MPI.COMM_WORLD.Get_size() > 1:
                team = Team(MPI.COMM_WORLD)
        _WORLD.append(team)
    return _WORLD[0]


def team():
    """The team this process trains in: :func:`world`'s :class:`Team` under ``mpiexec`` with
    several ranks, else :data:`SOLO`, a team of one (mpi4py is then never imported)."""
    return world() or SOLO


def shard_range(n: int, rank: int, size: int) -> tuple[int, int]:
    """[lo, hi) of rank's contiguous share of n items (shares differ by at most one)."""
    return n * rank // size, n * (rank + 1) // size


def shard_dataset(data, rank: int, size: int):
    """The rank's contiguous share of a :class:`~zfraw.data.Dataset` (a view: images stay
    memory-mapped)."""
    import dataclasses

    lo, hi = shard_range(len(data), rank, size)
    return dataclasses.replace(
        data, images=data.images[lo:hi], labels=data.labels[lo:hi],
        boxes=None if data.boxes is None else data.boxes[lo:hi],
        files=list(data.files[lo:hi]) if data.files else [])


def agreed(e: BaseException) -> BaseException:
    """Mark an error that every rank raises at the same point: the ranks then exit normally
    (rank 0 says it) instead of aborting the job."""
    e.zfraw_all_ranks = True
    return e


def is_agreed(e: BaseException) -> bool:
    return getattr(e, "zfraw_all_ranks", False)


class Team:
    """The ranks of one MPI job (``comm``: mpi4py's COMM_WORLD): who I am, the collectives the
    training loop needs, and the GPU/NCCL set-up."""

    def __init__(self, comm):
        from mpi4py import MPI

        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.root = self.rank == 0
        local = next((os.environ[v] for v in LOCAL_RANK_VARIABLES if v in os.environ), None)
        self.local_rank = int(local) if local is not None and local.isdigit() else self.rank
        self.nccl = None    # the NCCL communicator, once use_gpu made one

    def __repr__(self):
        return f"Team(rank {self.rank} of {self.size})"

    # -- small collectives (host values) -------------------------------------------------------
    def barrier(self) -> None:
        self.comm.Barrier()

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def allgather(self, obj) -> list:
        return self.comm.allgather(obj)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (every rank gets the same answer)."""
        return bool(self.comm.allreduce(bool(flag), op=self.MPI.LOR))

    def sum(self, values) -> list:
        """Element-wise sum over ranks of a short list of numbers, in float64."""
        buf = np.asarray(values, np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf.tolist()

    def abort(self, code: int = 1) -> None:
        """End the whole job (every rank) with exit status ``code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)

    def root_first(self, fn):
        """Run ``fn()`` on rank 0, then (if it succeeded) on the others: for work that fills a
        shared cache (decoding a dataset) or may fail for everyone alike. Rank 0's error is
        raised on every rank, marked :func:`agreed`."""
        out = self._on_root(fn, share=False)
        return out if self.root else fn()

    def from_root(self, fn):
        """Run ``fn()`` on rank 0 alone and return its result (which must pickle) on every rank:
        for decisions that rank 0 makes for the job (a run folder's checks, under its lock).
        Rank 0's error is raised on every rank, marked :func:`agreed`."""
        return self._on_root(fn, share=True)

    def _on_root(self, fn, share: bool):
        """``fn()`` on rank 0; the others get its result (when ``share``) or its error."""
        if self.root:
            try:
                out = fn()
            except Exception as e:
                self.bcast(("error", _portable(e)))
                raise agreed(e)
            self.bcast(("ok", out if share else None))
            return out
        kind, value = self.bcast(None)
        if kind == "error":
            raise agreed(value)
        return value

    # -- the training loop's needs ---------------------------------------------------------------
    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise ValueError(f"--batch-size {batch_size} does not divide over {self.size} MPI "
                             f"ranks; give a multiple of {self.size}, or another -n")

    def train_loader(self, *args, **kw) -> "ShardedLoader":
        return ShardedLoader(*args, rank=self.rank, size=self.size, **kw)

    def shard(self, data):
        return shard_dataset(data, self.rank, self.size)

    def sync_every(self, device: str, single: int) -> int:
        """Steps between reads of the running sums: every step on the CPU (a read costs nothing
        there and keeps rank 0's progress line live), else as in a single process."""
        return 1 if device == "cpu" else single

    def grad_reducer(self, net) -> "GradBuckets":
        """What :func:`zfraw.training.train_step` calls between the backward and the update:
        the gradients averaged over the ranks, in fused buckets."""
        return GradBuckets(net, self)

    def share_net(self, net) -> None:
        """Make every rank start from rank 0's weights, and give each rank's dropout layers
        their own seed. Call once, after the weights and the checkpoint's layer state are in."""
        from .layers import Dropout

        for _, p, _ in net.params_and_grads():
            host = np.ascontiguousarray(backend.to_host(p))
            self.comm.Bcast(host, root=0)
            p[...] = backend.get_array_module(p).asarray(host)
        for layer in net.layers:
            if isinstance(layer, Dropout):
                layer.seed = layer.seed + self.rank * RANK_SEED_STRIDE

    def check_in_step(self, net) -> None:
        """Raise RuntimeError unless every rank holds the same weights (a sum per parameter,
        compared across ranks; one small host read per parameter)."""
        mine = [float(backend.get_array_module(p).sum(p, dtype=np.float64))
                for _, p, _ in net.params_and_grads()]
        everyone = self.allgather(mine)
        if any(other != mine for other in everyone):
            raise RuntimeError(f"rank {self.rank}: the ranks' weights differ; the data-parallel "
                               "run lost step (a bug): stopping")

    def use_gpu(self) -> None:
        """Bind this rank to the GPU of its node-local rank and make the NCCL communicator
        (untested on hardware). Call before anything is allocated on the GPU."""
        cp = backend.cupy_module()
        cp.cuda.Device(self.local_rank % cp.cuda.runtime.getDeviceCount()).use()
        try:
            from cupy.cuda import nccl
        except ImportError:
            nccl = None
        if nccl is None or not getattr(nccl, "available", True):
            if self.root:
                print("warning: CuPy has no NCCL; gradients go through the host (slow)",
                      file=sys.stderr, flush=True)
            return
        uid = self.bcast(nccl.get_unique_id() if self.root else None)
        self.nccl = nccl.NcclCommunicator(self.size, uid, self.rank)


def _portable(e: BaseException) -> BaseException:
    """``e`` if it survives pickling (to be sent to the other ranks), else a RuntimeError with
    its message."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:   # noqa: BLE001
        return RuntimeError(str(e))


class Solo:
    """A plain process as a team of one: rank 0 of 1, the root, whose collectives have nobody to
    talk to (a reduction or a gather of one value is that value, a broadcast returns what it
    was given), with nothing to shard, share, reduce or check. The training loop runs it through
    the same calls as a :class:`Team`, and none of them reads from the device, so a GPU's
    queue is never stalled by them."""

    rank, size, local_rank, root = 0, 1, 0, True
    nccl = None

    def __repr__(self):
        return "Solo()"

    # -- small collectives (host values) -------------------------------------------------------
    def barrier(self) -> None:
        pass

    def bcast(self, obj):
        return obj

    def allgather(self, obj) -> list:
        return [obj]

    def any(self, flag: bool) -> bool:
        return bool(flag)

    def sum(self, values) -> list:
        """The values as floats, as :meth:`Team.sum` returns them."""
        return [float(v) for v in values]

    def root_first(self, fn):
        return fn()

    def from_root(self, fn):
        return fn()

    # -- the training loop's needs ---------------------------------------------------------------
    def check_batch(self, batch_size: int) -> None:
        pass                     # every batch divides over one rank

    def train_loader(self, *args, **kw) -> BatchLoader:
        return BatchLoader(*args, **kw)

    def shard(self, data):
        return data

    def sync_every(self, device: str, single: int) -> int:
        return single

    def grad_reducer(self, net) -> None:
        return None              # train_step's gradients are already the batch's

    def share_net(self, net) -> None:
        pass

    def check_in_step(self, net) -> None:
        pass

    def use_gpu(self) -> None:
        pass                     # the current device, as any CuPy program


SOLO = Solo()


class ShardedLoader(BatchLoader):
    """A :class:`BatchLoader` whose training batches are rank's share of the global ones: the
    same epoch plan, global batch ``order[s*B:(s+1)*B]``, of which rank r takes the r-th of
    ``size`` slices of B/size images. Evaluation batches are unchanged (shard the set itself
    with :func:`shard_dataset`)."""

    def __init__(self, *args, rank: int, size: int, **kw):
        super().__init__(*args, **kw)
        if self.batch_size % size:
            raise ValueError(f"batch size {self.batch_size} does not divide over {size} ranks")
        self.rank, self.size = rank, size

    def train_batches(self, epoch: int, start_step: int = 0):
        order, oy, ox, flip = self.epoch_plan(epoch)
        b, local = self.batch_size, self.batch_size // self.size

        def gen():
            for step in range(start_step, self.steps_per_epoch()):
                first = step * b + self.rank * local
                rows = np.sort(order[first:first + local])
                x = crop_batch(self.data.images[rows], self.mean, oy[rows], ox[rows], flip[rows],
                               self.crop)
                yield self._scaled(x), self.data.labels[rows]

        return _prefetch(gen()) if self.prefetch else gen()


class GradBuckets:
    """Sums the gradients over the ranks and divides by the rank count, in fused buckets.

    The parameters are taken in backward order (last layer first) and packed into buckets of
    about ``bucket_bytes``; each bucket is one flat buffer on the parameters' device and every
    layer's ``grads[key]`` becomes a view into it, so the layers' in-place gradient writes land
    in the buffer and a step reduces ``len(buckets)`` buffers, with no copies. (A layer that
    rebinds its grads instead of writing them is copied in, and rebound to the view.)

    CPU: MPI Allreduce in place. GPU: NCCL allReduce on the current stream, all buckets in one
    NCCL group (untested on hardware), or, without NCCL, through host copies and MPI.
    ``calls``, ``bytes`` and ``seconds`` count the reductions (seconds: host-side MPI time only).
    """

    def __init__(self, net, team: Team, bucket_bytes: int = BUCKET_BYTES):
        self.team = team
        entries = [(layer, key) for layer in reversed(net.layers) for key in layer.params]
        self.buckets = []          # [(flat buffer, [(layer, key, view)])]
        group, nbytes = [], 0
        for layer, key in entries:
            group.append((layer, key))
            nbytes += layer.grads[key].nbytes
            if nbytes >= bucket_bytes:
                self._add(group)
                group, nbytes = [], 0
        if group:
            self._add(group)
        self.calls, self.bytes, self.seconds = 0, 0, 0.0

    def _add(self, group) -> None:
        xp = backend.get_array_module(group[0][0].grads[group[0][1]])
        dtype = group[0][0].grads[group[0][1]].dtype
        total = sum(layer.grads[key].size for layer, key in group)
        flat = xp.zeros(total, dtype)
        views, offset = [], 0
        for layer, key in group:
            g = layer.grads[key]
            if g.dtype != dtype:
                raise TypeError(f"{layer.name}.{key}: gradients of mixed dtypes in one bucket")
            view = flat[offset:offset + g.size].reshape(g.shape)
            view[...] = g
            layer.grads[key] = view
            views.append((layer, key, view))
            offset += g.size
        self.buckets.append((flat, views))

    def __len__(self) -> int:
        return len(self.buckets)

    def __call__(self) -> None:
        """Reduce every bucket (after the backward, before the optimizer step)."""
        for _, views in self.buckets:
            for layer, key, view in views:
                if layer.grads[key] is not view:        # rebound by its layer: copy it in
                    view[...] = layer.grads[key]
                    layer.grads[key] = view
        t0 = time.perf_counter()
        if self.team.nccl is not None:
            self._nccl()
        else:
            for flat, _ in self.buckets:
                self._mpi(flat)
        self.seconds += time.perf_counter() - t0
        for flat, _ in self.buckets:
            flat /= flat.dtype.type(self.team.size)     # exact for a power-of-two rank count
            self.bytes += flat.nbytes
        self.calls += len(self.buckets)

    def _mpi(self, flat) -> None:
        MPI = self.team.MPI
        if isinstance(flat, np.ndarray):
            self.team.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            return
        host = backend.to_host(flat)                     # GPU without NCCL: a host round trip
        self.team.comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
        flat[...] = backend.get_array_module(flat).asarray(host)

    def _nccl(self) -> None:
        from cupy.cuda import nccl

        cp = backend.cupy_module()
        stream = cp.cuda.get_current_stream().ptr
        types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
        nccl.groupStart()
        try:
            for flat, _ in self.buckets:
                self.team.nccl.allReduce(flat.data.ptr, flat.data.ptr, flat.size,
                                         types[np.dtype(flat.dtype)], nccl.NCCL_SUM, stream)
        finally:
            nccl.groupEnd()


def dealt_batches(n: int, batch_size: int, rank: int, size: int) -> list:
    """[(start, stop)] of the batches of a sharded pass over n images that rank ``rank`` of
    ``size`` takes: the images cut into batches of ``batch_size`` in order, dealt round-robin
    (rank r takes batches r, r + size, ...), so every rank forwards the same batches a single
    pass would, and the ranks' results merge into the single pass's."""
    starts = range(0, n, batch_size)
    return [(s, min(s + batch_size, n)) for i, s in enumerate(starts) if i % size == rank]


def collect_topk_sharded(net, source, layers, team: Team | None = None, k: int = 9,
                         batch_size: int = 64, limit=None, distinct: bool = False) -> dict:
    """:func:`zfraw.viz.top9.collect_topk` with the batches dealt round-robin over the ranks
    (rank r forwards batches r, r + size, ...) and the ranks' results merged exactly: every rank
    returns the same {layer: TopK}. Without a team (or with one rank) it is the single pass.
    ``distinct``: as collect_topk's (the k strongest images, each at its strongest position);
    the merge is exact for both selections, since every image lives in one shard."""
    from .viz.topk import StreamingTopK, merge_topk

    layers = list(layers)
    deepest = max(layers, key=net.index)
    rank, size = (0, 1) if team is None else (team.rank, team.size)
    keep = {name: StreamingTopK(k, per_image=distinct) for name in layers}
    net.eval()
    n = len(source) if limit is None else min(limit, len(source))
    for start, stop in dealt_batches(n, batch_size, rank, size):
        x = source.inputs(np.arange(start, stop))
        _, acts = net.forward(backend.to_device(x, net.device), until=deepest, capture=layers)
        for name in layers:
            keep[name].update(acts[name], start)
    mine = {name: tk.result() if tk.values is not None else None for name, tk in keep.items()}
    parts = [mine] if team is None else team.allgather(mine)
    return {name: merge_topk([p[name] for p in parts if p[name] is not None], k)
            for name in layers}
