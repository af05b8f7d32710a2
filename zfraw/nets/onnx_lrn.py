"""PyTorch's ``nn.LocalResponseNorm`` as its ONNX exporters write it, read back as one LRN.

PyTorch has no LRN op to export: ``F.local_response_norm`` is written out as the ops it is made
of, and :func:`zfraw.nets.onnx.load_onnx` recognizes that subgraph here. For (N, C, H, W) input
``x`` it computes

    div = x * x                                      Mul (the dynamo exporter may write Pow(x, 2))
    div = div.view(N, 1, C, H, -1)                   Reshape, its shape from Shape/Gather/Concat
    div = pad(div, channels: size//2 before, (size-1)//2 after)         Pad (pads folded)
    div = avg_pool3d(div, (size, 1, 1), stride 1).squeeze(1)  AveragePool, Squeeze (or an If
                                                     that squeezes when axis 1 has length 1)
    div = div.view(N, C, H, W)                       Reshape
    y = x / (div * alpha + k) ** beta                Mul, Add, Pow, Div

which is ONNX's LRN (the average over the window is ONNX's alpha/size times the sum) with the
window c - size//2 .. c + (size-1)//2. ONNX's window is c - (size-1)//2 .. c + size//2: the same
for odd sizes, one channel apart for even ones, so an even size is refused with that reason
rather than imported as a different function.

Recognition is in two steps. :func:`find_torch_lrns`, before the importer's walk, finds each Div
whose divisor is Pow(Add(Mul(s, alpha), k), beta) with ``s`` reached from Mul(x, x) through
Reshape/Unsqueeze/Squeeze/Identity/Pad/AveragePool/If nodes (an AveragePool among them), collects
the shape arithmetic those nodes read (Shape, Gather, Unsqueeze, Concat, Constant, Cast,
ConstantOfShape, Reshape, Slice, Transpose, Equal, ...) and replaces the whole subgraph by one
node reading x. :func:`read_torch_lrn`, when the walk reaches that node and knows x's per-example
shape, folds the shape arithmetic (the batch stays a symbol), follows the tensor's layout through
every reshape, pad and pool, and returns (size, alpha, beta, k) only if the subgraph is exactly
an LRN across channels; anything else raises, naming the node at fault. Any other use of these
ops is left alone and refused by the importer as an unsupported op.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TORCH_LRN = "zfraw.TorchLocalResponseNorm"  # op_type of the one node a matched subgraph becomes

# ops on the path of the squared activations, between Mul(x, x) and Mul(., alpha)
_DATA_OPS = ("Reshape", "Unsqueeze", "Squeeze", "Identity", "Pad", "AveragePool", "If")
# ops of the shape arithmetic that those read, folded at import
_SHAPE_OPS = ("Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast",
              "ConstantOfShape", "Reshape", "Slice", "Transpose", "Equal", "Identity", "Size")


class _Batch:
    """The symbolic batch size inside folded shapes."""

    def __repr__(self):
        return "N"


BATCH = _Batch()


class _Refused(Exception):
    """Raised inside the folding; the caller turns it into the importer's error for ``node``."""

    def __init__(self, node, message):
        super().__init__(message)
        self.node, self.message = node, message


@dataclass
class TorchLrn:
    """One matched subgraph: x, its Div and the other nodes, the data path in order."""
    x: str
    div: object
    pow: object
    add: object
    mul: object
    square: object
    chain: list                                  # data nodes from square to mul, in order
    alpha: str = ""                              # the names of the three constants
    k: str = ""
    beta: str = ""
    nodes: list = field(default_factory=list)    # every node the match replaces (div included)

    @property
    def names(self) -> list:
        return [n.name for n in self.nodes]


# -- small readers ------------------------------------------------------------------------------
def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _subgraph_reads(graph) -> set:
    """Names a subgraph (an If branch) reads from the scope around it."""
    made = {o for n in graph.node for o in n.output} | {i.name for i in graph.input} | {
        t.name for t in graph.initializer}
    reads = set()
    for n in graph.node:
        reads |= {name for name in _reads(n) if name not in made}
    return reads


def _reads(node) -> list:
    """Every tensor ``node`` reads: its inputs and, for If/Loop/Scan, what its graphs read."""
    names = [n for n in node.input if n]
    from onnx import AttributeProto

    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            names += sorted(_subgraph_reads(a.g))
        elif a.type == AttributeProto.GRAPHS:
            for g in a.graphs:
                names += sorted(_subgraph_reads(g))
    return names


# -- step 1: find the subgraphs ----------------------------------------------------------------
def find_torch_lrns(nodes: list, consts: dict, outputs: set, fail):
    """(nodes with each matched subgraph replaced by one TORCH_LRN node, {that node's output:
    TorchLrn}). ``consts``: initializer values; ``outputs``: the graph's output names; ``fail``:
    the importer's ``fail(node, message)``, which returns the exception to raise."""
    from onnx import helper

    producer = {o: n for n in nodes for o in n.output if o}
    readers: dict[str, list] = {}
    for i, n in enumerate(nodes):
        for name in _reads(n):
            readers.setdefault(name, []).append(i)
    index = {id(n): i for i, n in enumerate(nodes)}

    def is_const(name, depth=0):
        if name in consts:
            return True
        p = producer.get(name)
        if p is None or depth > 8:
            return False
        if p.op_type == "Constant":
            return True
        return p.op_type in ("Cast", "Identity") and is_const(p.input[0], depth + 1)

    matches, members, replace = {}, {}, {}
    for div in nodes:
        if div.op_type != "Div" or div.domain not in ("", "ai.onnx"):
            continue
        m = _skeleton(div, producer, is_const)
        if m is None:
            continue
        mine = {index[id(n)] for n in (m.div, m.pow, m.add, m.mul, m.square, *m.chain)}
        data = {m.x} | {n.output[0] for n in (m.square, *m.chain)}
        mine |= _support(m, producer, index, data, consts, nodes, fail)
        m.nodes = [nodes[i] for i in sorted(mine)]
        members.update({i: m for i in mine})
        name = f"{div.name.rsplit('/', 1)[0]}/LRN" if "/" in div.name else ""
        replace[index[id(div)]] = helper.make_node(TORCH_LRN, [m.x], [div.output[0]], name=name)
        matches[div.output[0]] = m
    # Drop what only the matches read (an exporter may share a constant between two of them);
    # a Constant read elsewhere too stays, anything else read elsewhere is refused.
    drop = set()
    for i, m in members.items():
        n = nodes[i]
        if n is m.div:
            continue
        shared = False
        for o in n.output:
            outside = [j for j in readers.get(o, ()) if j not in members]
            if not outside and o not in outputs:
                continue
            if n.op_type == "Constant" and o not in outputs:
                shared = True
                continue
            who = (repr(nodes[outside[0]].name or nodes[outside[0]].op_type) if outside
                   else "the graph output")
            raise fail(n, f"belongs to the subgraph of PyTorch's LocalResponseNorm ending at "
                          f"{m.div.name!r}, but its output {o!r} is also read by {who}: zfraw "
                          "imports the subgraph only as a whole")
        if not shared:
            drop.add(i)
    if not matches:
        return nodes, {}
    out = []
    for i, n in enumerate(nodes):
        if i in replace:
            out.append(replace[i])
        elif i not in drop:
            out.append(n)
    return out, matches


def _op(producer, name, op_type):
    p = producer.get(name)
    return p if p is not None and p.op_type == op_type and p.domain in ("", "ai.onnx") else None


def _split(node, is_const):
    """(the non-constant input, the constant input) of a binary op with exactly one constant."""
    if len(node.input) != 2:
        return None
    a, b = node.input
    if is_const(b) and not is_const(a):
        return a, b
    if is_const(a) and not is_const(b):
        return b, a
    return None


def _data_input(node):
    """The one tensor a data-path node transforms (for an If: what its branches read)."""
    if node.op_type == "If":
        reads = set(_reads(node)) - {node.input[0]}
        return reads.pop() if len(reads) == 1 else None
    return node.input[0] if node.input else None


def _is_square(node, x, is_const):
    if node.op_type == "Mul":
        return list(node.input) == [x, x]
    return node.op_type == "Pow" and len(node.input) == 2 and node.input[0] == x and is_const(
        node.input[1])


def _skeleton(div, producer, is_const):
    """The TorchLrn whose Div is ``div``, or None when ``div`` is not the end of one."""
    if len(div.input) != 2:
        return None
    x, p = div.input
    pw = _op(producer, p, "Pow")
    if pw is None or len(pw.input) != 2 or not is_const(pw.input[1]):
        return None
    add = _op(producer, pw.input[0], "Add")
    split = add is not None and _split(add, is_const)
    if not split:
        return None
    k = split[1]
    mul = _op(producer, split[0], "Mul")
    split = mul is not None and _split(mul, is_const)
    if not split:
        return None
    alpha = split[1]
    s, chain = split[0], []
    node = producer.get(s)
    while node is not None and not _is_square(node, x, is_const):
        if node.op_type not in _DATA_OPS or node.domain not in ("", "ai.onnx") or len(chain) > 16:
            return None
        chain.append(node)
        s = _data_input(node)
        node = producer.get(s) if s else None
    if node is None or not any(n.op_type == "AveragePool" for n in chain):
        return None
    return TorchLrn(x, div, pw, add, mul, node, chain[::-1], alpha, k, pw.input[1])


def _support(m, producer, index, data, consts, nodes, fail) -> set:
    """Indexes of the nodes computing what the match's nodes read besides the data path (shapes,
    pads, axes, the constants alpha, k, beta), checked to be shape arithmetic."""
    start = [m.beta, m.k, m.alpha, *m.square.input[1:]]
    for n in m.chain:
        start += n.input[1:] if n.op_type != "If" else [n.input[0]]
    seen, todo = set(), [s for s in start if s and s not in data]
    while todo:
        name = todo.pop()
        if name in consts or name in data:
            continue
        p = producer.get(name)
        if p is None:
            raise fail(m.div, f"PyTorch's LocalResponseNorm subgraph reads {name!r}, which is "
                              "neither a constant nor computed from the normalized tensor's shape")
        i = index[id(p)]
        if i in seen:
            continue
        if p.op_type not in _SHAPE_OPS or p.domain not in ("", "ai.onnx"):
            raise fail(p, f"computes {name!r} for PyTorch's LocalResponseNorm subgraph ending at "
                          f"{m.div.name!r}, and {p.op_type} is not one of the shape ops zfraw "
                          f"folds ({', '.join(_SHAPE_OPS)})")
        seen.add(i)
        if p.op_type in ("Shape", "Size"):
            if p.input[0] not in data:
                raise fail(p, f"reads the shape of {p.input[0]!r}, which is not on the path of "
                              f"PyTorch's LocalResponseNorm at {m.div.name!r}")
            continue
        for r in _reads(p):
            if r in data:
                raise fail(p, f"reads {r!r}, an activation, inside the shape arithmetic of "
                              f"PyTorch's LocalResponseNorm at {m.div.name!r}")
            todo.append(r)
    return seen


# -- step 2: read one, knowing the input's shape -----------------------------------------------
def read_torch_lrn(m: TorchLrn, shape: tuple, batch, consts: dict, opset: int, fail):
    """(size, alpha, beta, k) of the LRN that ``m`` computes on per-example ``shape`` (C, H, W)
    with ``batch`` (an int, or anything else for a symbolic batch), or the importer's error
    naming the node where the subgraph stops being one."""
    try:
        return _Reader(m, shape, batch, consts, opset).run()
    except _Refused as e:
        raise fail(e.node, e.message) from None


def _prod(dims):
    """(how many batch symbols, product of the int dims)."""
    nb, s = 0, 1
    for d in dims:
        if d is BATCH:
            nb += 1
        else:
            s *= int(d)
    return nb, s


def _has_batch(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == object and any(v is BATCH for v in a.flat)


def _clean(a):
    a = np.asarray(a)
    if a.dtype == object and not _has_batch(a):
        return a.astype(np.int64)
    return a


class _Reader:
    def __init__(self, m, shape, batch, consts, opset):
        self.m, self.consts, self.opset = m, consts, opset
        self.C, self.H, self.W = (int(d) for d in shape)
        self.B = batch if isinstance(batch, int) else BATCH
        self.batch_prod = _prod([self.B])
        self.producer = {o: n for n in m.nodes for o in n.output if o}
        self.shapes = {m.x: (self.B, self.C, self.H, self.W)}
        self.values: dict = {}

    # -- folding the shape arithmetic -----------------------------------------------------------
    def value(self, name, at):
        """The folded value of tensor ``name`` (an ndarray; object dtype where it holds the
        batch symbol), read by node ``at``."""
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            return np.asarray(self.consts[name])
        if name in self.shapes:
            raise _Refused(at, f"reads the activation {name!r} where a constant is expected")
        node = self.producer.get(name)
        if node is None:
            raise _Refused(at, f"input {name!r} is not a constant")
        v = _clean(self._fold(node))
        self.values[name] = v
        return v

    def _fold(self, node):
        from onnx import helper, numpy_helper

        a, op = _attrs(node), node.op_type
        ins = list(node.input)
        if op == "Constant":
            if "value" in a:
                return numpy_helper.to_array(a["value"])
            for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                               ("value_int", np.int64), ("value_ints", np.int64)):
                if key in a:
                    return np.asarray(a[key], dtype)
            raise _Refused(node, f"attribute {', '.join(a)}: not a constant zfraw can fold")
        if op in ("Shape", "Size"):
            if ins[0] not in self.shapes:
                raise _Refused(node, f"reads the shape of {ins[0]!r}, not one zfraw follows")
            dims = np.array(list(self.shapes[ins[0]]), dtype=object)
            if op == "Size":
                nb, s = _prod(dims)
                if nb:
                    raise _Refused(node, "the size depends on the batch")
                return np.array(s, np.int64)
            rank = len(dims)
            start, end = int(a.get("start", 0)), a.get("end")
            end = rank if end is None else int(end)
            return dims[start + rank if start < 0 else start:end + rank if end < 0 else end]
        x = self.value(ins[0], node) if ins else None
        if op == "Identity":
            return x
        if op == "Gather":
            idx = np.asarray(self.value(ins[1], node), np.int64)
            axis = int(a.get("axis", 0))
            idx = np.where(idx < 0, idx + x.shape[axis], idx)
            return np.take(x, idx, axis=axis)
        if op in ("Unsqueeze", "Squeeze"):
            axes = a.get("axes")
            if axes is None and len(ins) > 1 and ins[1]:
                axes = self.value(ins[1], node)
            return x.reshape(_squeeze(x.shape, axes, op == "Unsqueeze", node))
        if op == "Concat":
            parts = [np.atleast_1d(self.value(n, node)) for n in ins]
            dtype = object if any(p.dtype == object for p in parts) else None
            return np.concatenate([p.astype(dtype) if dtype else p for p in parts],
                                  axis=int(a.get("axis", 0)))
        if op == "Cast":
            to = helper.tensor_dtype_to_np_dtype(int(a["to"]))
            if _has_batch(x):
                if np.dtype(to).kind not in "iu":
                    raise _Refused(node, "casts the batch size to a non-integer type")
                return x
            return x.astype(to)
        if op == "ConstantOfShape":
            if _has_batch(x):
                raise _Refused(node, "its shape depends on the batch")
            fill = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            return np.full([int(d) for d in x.reshape(-1)], fill.reshape(-1)[0], fill.dtype)
        if op == "Reshape":
            target = a["shape"] if "shape" in a else self.value(ins[1], node)
            out = _reshape(x.shape, target, bool(a.get("allowzero", 0)), node)
            return x.reshape([int(d) for d in out])
        if op == "Slice":
            return self._slice(node, a, ins, x)
        if op == "Transpose":
            return np.transpose(x, a.get("perm"))
        if op == "Equal":
            y = self.value(ins[1], node)
            if _has_batch(x) or _has_batch(y):
                raise _Refused(node, "compares the batch size, which is symbolic here")
            return np.equal(x, y)
        raise _Refused(node, f"op {op} cannot be folded")

    def _slice(self, node, a, ins, x):
        if self.opset < 10 or "starts" in a:
            starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
        else:
            def opt(i):
                return self.value(ins[i], node) if len(ins) > i and ins[i] else None
            starts, ends, axes, steps = opt(1), opt(2), opt(3), opt(4)
        starts = [int(v) for v in np.reshape(starts, -1)]
        ends = [int(v) for v in np.reshape(ends, -1)]
        axes = list(range(len(starts))) if axes is None else [int(v) for v in np.reshape(axes, -1)]
        steps = [1] * len(starts) if steps is None else [int(v) for v in np.reshape(steps, -1)]
        index = [slice(None)] * x.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps):
            if st == 0:
                raise _Refused(node, "a slice step of 0")
            n = x.shape[ax]
            clamp = (lambda v, lo, hi: max(lo, min(hi, v + n if v < 0 else v)))
            s, e = (clamp(s, 0, n), clamp(e, 0, n)) if st > 0 else (clamp(s, -1, n - 1),
                                                                    clamp(e, -1, n - 1))
            index[ax] = slice(s, None if e < 0 else e, st)
        return x[tuple(index)]

    # -- the data path --------------------------------------------------------------------------
    def run(self):
        m = self.m
        if m.square.op_type == "Pow":
            e = self.value(m.square.input[1], m.square)
            if e.size != 1 or float(e.reshape(-1)[0]) != 2.0:
                raise _Refused(m.square, "raises x to a power other than 2")
        self.shapes[m.square.output[0]] = self.shapes[m.x]
        self.clen, self.before, self.after, self.size = self.C, 0, 0, None
        cur = m.square.output[0]
        for node in m.chain:
            self.shapes[node.output[0]] = self._step(node, self.shapes[cur])
            cur = node.output[0]
        if self.size is None:
            raise _Refused(m.chain[-1], "no AveragePool sums the squares over channels")
        if self.shapes[cur] != self.shapes[m.x]:
            raise _Refused(m.chain[-1], f"leaves the squares' average in shape "
                                        f"{list(self.shapes[cur])}, not the input's "
                                        f"{list(self.shapes[m.x])}")
        alpha = self._scalar(m.mul, m.alpha)
        k = self._scalar(m.add, m.k)
        beta = self._scalar(m.pow, m.beta)
        size = self.size
        if size < 1:
            raise _Refused(self.pool, f"a LocalResponseNorm of size {size}: the size must be "
                                      "at least 1")
        want = ((size - 1) // 2, size // 2)   # ONNX's (and zfraw's) window
        if (self.before, self.after) != want:
            if (self.before, self.after) == want[::-1]:
                why = (f"PyTorch's LocalResponseNorm of even size {size} averages channels "
                       f"c-{self.before}..c+{self.after}, ONNX's LRN (and zfraw's) "
                       f"c-{want[0]}..c+{want[1]}: a different function for even sizes, so "
                       "zfraw refuses it (odd sizes, as AlexNet's and ZFNet's 5, import)")
            else:
                why = (f"averages channels c-{self.before}..c+{self.after} with size {size}; "
                       f"an LRN's window is c-{want[0]}..c+{want[1]}")
            raise _Refused(self.pool, why)
        return size, alpha, beta, k

    def _scalar(self, node, name):
        v = np.asarray(self.value(name, node))
        if v.size != 1 or v.dtype.kind not in "fiu":
            raise _Refused(node, f"input {name!r} has shape {list(v.shape)}; PyTorch's "
                                 "LocalResponseNorm has one number there")
        v = float(v.reshape(-1)[0])
        if not np.isfinite(v):
            raise _Refused(node, f"input {name!r} is {v}")
        return v

    def _channel_axes(self, shape, length):
        """Axes of ``shape`` that hold the channels (of ``length``, pads included) in row-major
        order: the batch before them, the H*W positions after."""
        return [i for i in range(len(shape))
                if _prod(shape[:i]) == self.batch_prod and shape[i] == length
                and _prod(shape[i + 1:]) == (0, self.H * self.W)]

    def _step(self, node, shape):
        op, a, ins = node.op_type, _attrs(node), list(node.input)
        if op == "Identity":
            return shape
        if op == "Reshape":
            target = a["shape"] if "shape" in a else self.value(ins[1], node)
            return _reshape(shape, target, bool(a.get("allowzero", 0)), node)
        if op in ("Squeeze", "Unsqueeze"):
            axes = a.get("axes")
            if axes is None and len(ins) > 1 and ins[1]:
                axes = self.value(ins[1], node)
            return _squeeze(shape, axes, op == "Unsqueeze", node)
        if op == "If":
            return self._if(node, a, shape)
        if op == "Pad":
            return self._pad(node, a, ins, shape)
        if op == "AveragePool":
            return self._pool(node, a, shape)
        raise _Refused(node, f"op {op} is not part of a LocalResponseNorm")

    def _if(self, node, a, shape):
        cond = np.asarray(self.value(node.input[0], node))
        if cond.size != 1:
            raise _Refused(node, "its condition is not one boolean")
        branch = a["then_branch"] if bool(cond.reshape(-1)[0]) else a["else_branch"]
        data = [n for n in branch.node if n.op_type != "Constant"]
        outer = _data_input(node)
        if (len(data) != 1 or len(branch.output) != 1 or data[0].output[0] != branch.output[0].name
                or data[0].op_type not in ("Squeeze", "Unsqueeze", "Identity", "Reshape")
                or not data[0].input or data[0].input[0] != outer):
            raise _Refused(node, "the branch it takes is not one Squeeze, Unsqueeze, Reshape or "
                                 "Identity of the pooled squares")
        for n in branch.node:
            for o in n.output:
                self.producer[o] = n
        return self._step(data[0], shape)

    def _pad(self, node, a, ins, shape):
        if self.size is not None:
            raise _Refused(node, "pads after the average over channels")
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if mode != "constant":
            raise _Refused(node, f"attribute mode={mode!r}: PyTorch's LocalResponseNorm pads "
                                 "with zeros")
        rank = len(shape)
        if "pads" in a:                      # opset < 11
            pads, value, axes = list(a["pads"]), float(a.get("value", 0.0)), None
        else:
            pads = [int(p) for p in np.reshape(self.value(ins[1], node), -1)]
            value = 0.0
            if len(ins) > 2 and ins[2]:
                value = float(np.asarray(self.value(ins[2], node)).reshape(-1)[0])
            axes = ([int(v) for v in np.reshape(self.value(ins[3], node), -1)]
                    if len(ins) > 3 and ins[3] else None)
        axes = list(range(rank)) if axes is None else [ax + rank if ax < 0 else ax for ax in axes]
        if value != 0.0:
            raise _Refused(node, f"pads with {value}, not 0")
        if len(pads) != 2 * len(axes):
            raise _Refused(node, f"pads {pads} do not fit {len(axes)} axes")
        begin, end = [0] * rank, [0] * rank
        for j, ax in enumerate(axes):
            begin[ax], end[ax] = pads[j], pads[j + len(axes)]
        padded = [ax for ax in range(rank) if begin[ax] or end[ax]]
        if not padded:
            return shape
        chan = self._channel_axes(shape, self.clen)
        if len(padded) != 1 or padded[0] not in chan or begin[padded[0]] < 0 or end[padded[0]] < 0:
            raise _Refused(node, f"pads {pads} on shape {list(shape)}: PyTorch's "
                                 "LocalResponseNorm pads only the channel axis")
        ax = padded[0]
        self.before += begin[ax]
        self.after += end[ax]
        self.clen += begin[ax] + end[ax]
        return tuple(d + begin[ax] + end[ax] if i == ax else d for i, d in enumerate(shape))

    def _pool(self, node, a, shape):
        if self.size is not None:
            raise _Refused(node, "a second AveragePool")
        rank = len(shape)
        n = rank - 2
        if n < 1 or "kernel_shape" not in a or len(a["kernel_shape"]) != n:
            raise _Refused(node, f"kernel_shape {a.get('kernel_shape')} on shape {list(shape)}")
        kernel = [int(k) for k in a["kernel_shape"]]
        strides = [int(s) for s in a.get("strides", [1] * n)]
        dil = [int(d) for d in a.get("dilations", [1] * n)]
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        pads = [int(p) for p in a.get("pads", [0] * 2 * n)]
        if auto not in ("NOTSET", "", "VALID") or len(pads) != 2 * n:
            raise _Refused(node, f"attribute auto_pad={auto!r}, pads={pads}: PyTorch's "
                                 "LocalResponseNorm pools with explicit zero pads")
        if auto == "VALID":
            pads = [0] * 2 * n
        if any(s != 1 for s in strides) or any(d != 1 for d in dil):
            raise _Refused(node, f"attribute strides={strides}, dilations={dil}: an LRN "
                                 "averages every window, stride 1")
        window = [j for j in range(n) if kernel[j] != 1 or pads[j] or pads[j + n]]
        chan = self._channel_axes(shape, self.clen)
        if len(window) > 1 or (window and window[0] + 2 not in chan):
            raise _Refused(node, f"kernel_shape={kernel}, pads={pads} on shape {list(shape)}: "
                                 "PyTorch's LocalResponseNorm averages over the channel axis "
                                 "only")
        if window and kernel[window[0]] < 1:
            raise _Refused(node, f"kernel_shape={kernel}: a LocalResponseNorm of size "
                                 f"{kernel[window[0]]}; the size must be at least 1")
        if window:
            j = window[0]
            if (pads[j] or pads[j + n]) and not int(a.get("count_include_pad", 0)):
                raise _Refused(node, "attribute count_include_pad=0 with pads: the border "
                                     "channels would be averaged over fewer than size")
            self.before += pads[j]
            self.after += pads[j + n]
            self.size = kernel[j]
            ax, length = j + 2, self.clen + pads[j] + pads[j + n] - kernel[j] + 1
        else:
            self.size, ax, length = 1, None, self.clen
        self.pool = node
        if length != self.C:
            raise _Refused(node, f"averages {self.clen} channels (pads included) into {length}, "
                                 f"not {self.C}")
        self.clen = self.C
        return tuple(length if i == ax else d for i, d in enumerate(shape))


def _squeeze(shape, axes, unsqueeze: bool, node) -> tuple:
    """The shape after Unsqueeze/Squeeze of ``axes`` (None: every axis of length 1, for
    Squeeze); the batch symbol counts as a length other than 1."""
    shape = tuple(shape)
    axes = None if axes is None else [int(v) for v in np.reshape(axes, -1)]
    if unsqueeze:
        if not axes:
            raise _Refused(node, "has no axes")
        rank = len(shape) + len(axes)
        axes = {ax + rank if ax < 0 else ax for ax in axes}
        rest = iter(shape)
        return tuple(1 if i in axes else next(rest) for i in range(rank))
    rank = len(shape)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d is not BATCH and d == 1]
    axes = {ax + rank if ax < 0 else ax for ax in axes}
    if any(not 0 <= ax < rank or shape[ax] is BATCH or shape[ax] != 1 for ax in axes):
        raise _Refused(node, f"squeezes axes {sorted(axes)} of shape {list(shape)}, not all of "
                             "length 1")
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reshape(shape, target, allowzero: bool, node):
    """The output shape of Reshape(shape -> target), ``shape``/``target`` possibly holding the
    batch symbol; refuses targets that do not keep the batch whole."""
    target = list(np.reshape(np.asarray(target, dtype=object), -1))
    out, neg = [], None
    for j, t in enumerate(target):
        if t is BATCH:
            out.append(BATCH)
            continue
        t = int(t)
        if t == -1 and neg is None:
            neg = j
            out.append(None)
        elif t == 0 and not allowzero:
            if j >= len(shape):
                raise _Refused(node, f"shape {target}: a 0 beyond the input's rank")
            out.append(shape[j])
        elif t < 0:
            raise _Refused(node, f"shape {target}: {t}")
        else:
            out.append(t)
    nb, s = _prod(shape)
    kb, ks = _prod([d for d in out if d is not None])
    if neg is not None:
        if nb - kb == 1 and ks == s:
            out[neg] = BATCH
        elif nb == kb and ks and s % ks == 0:
            out[neg] = s // ks
        else:
            raise _Refused(node, f"shape {target} on {list(shape)}: does not keep the batch "
                                 "whole")
    if _prod(out) != (nb, s):
        raise _Refused(node, f"shape {target} on {list(shape)}: a different number of values")
    return tuple(out)
