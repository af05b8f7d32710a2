"""The zfraw benchmark suite: ``python3 -m benchmarks.run [--quick]`` from the repository root;
``python3 -m benchmarks.op NAME`` checks and times every version of one primitive.

timing.py   warm-up + interleaved timed runs with device synchronisation, medians
ceiling.py  this machine's measured peak: a large float32 matmul (GFLOP/s) and copy (GB/s)
cases.py    each primitive on the zf shapes at batch 16, for every registered impl
op.py       one primitive: every version checked against the reference, then timed
layers.py   each conv/pool/lrn/relu/fc layer of zf at batch 16, forward and backward
step.py     the full training step (zf at 224, zf-64 at 64), images/s, per impl
torch_peer.py  the same primitives, layers and nets in PyTorch (the peer column; optional)
report.py   results as JSON and a markdown summary under benchmarks/results/
"""
