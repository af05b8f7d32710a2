"""Shapes, parameter counts, multiply-adds and receptive fields, from the layer list.

Receptive field recurrence, per spatial axis, through a layer with window (k, s) and leading
pad p (the top pad for rows, the left pad for columns; see ``Layer.window``):
    size_out  = size_in + (k - 1) * jump_in
    jump_out  = jump_in * s
    start_out = start_in - p * jump_in
where ``start`` is the input coordinate of the first pixel seen by output position 0 (negative
when padding reaches outside the image). The input itself is (size 1, jump 1, start 0). The
trailing (bottom/right) pads and ceil_mode only change how many outputs there are, never where
one looks, so they do not enter. Kernels and strides are square, so size and jump are the same
in both axes; the starts differ when the top and left pads do.
"""
from __future__ import annotations


def propagate_shapes(layers, input_shape) -> list[tuple]:
    """[input_shape, out_shape of layer 0, ...]; raises a clear error where a layer does not fit."""
    shapes = [tuple(input_shape)]
    for layer in layers:
        shapes.append(tuple(layer.output_shape(shapes[-1])))
    return shapes


def _window(layer, in_shape):
    """(k, stride, pad_top, pad_left); a 3-tuple window (k, stride, pad) means pad on both."""
    w = tuple(layer.window(in_shape))
    return w if len(w) == 4 else (w[0], w[1], w[2], w[2])


def summarize(net) -> list[dict]:
    """Per layer: name, kind, out_shape, params, macs, rf_size, rf_jump, rf_start (rows) and
    rf_start_x (columns)."""
    rows = []
    size, jump, start_y, start_x = 1, 1, 0, 0
    for layer, in_shape, out_shape in zip(net.layers, net.shapes[:-1], net.shapes[1:]):
        k, s, pt, pl = _window(layer, in_shape)
        size, jump, start_y, start_x = (size + (k - 1) * jump, jump * s,
                                        start_y - pt * jump, start_x - pl * jump)
        rows.append(dict(name=layer.name, kind=layer.kind, out_shape=out_shape,
                         params=sum(int(v.size) for v in layer.params.values()),
                         macs=layer.macs(in_shape), rf_size=size, rf_jump=jump,
                         rf_start=start_y, rf_start_x=start_x))
    return rows


def _start(row) -> str:
    """The receptive field's start: one number, or 'rows,columns' when they differ."""
    y, x = row["rf_start"], row["rf_start_x"]
    return str(y) if y == x else f"{y},{x}"


def format_summary(net) -> str:
    """The summary as a text table, its name column as wide as the longest layer name (an
    imported graph's names can be long)."""
    rows = summarize(net)
    w = max([8] + [len(r["name"]) for r in rows])
    head = (f"{'layer':<{w}} {'kind':<8} {'output':>16} {'params':>12} {'mult-adds':>14}  "
            f"{'receptive field (size/jump/start)'}")
    out = (f"{net.num_classes} classes" if net.num_classes is not None else
           f"no classifier (output {'x'.join(map(str, net.shapes[-1]))})")  # a headless import
    lines = [f"{net.arch}: input {net.input_shape}, {out}", head, "-" * len(head)]
    for r in rows:
        shape = "x".join(map(str, r["out_shape"]))
        lines.append(f"{r['name']:<{w}} {r['kind']:<8} {shape:>16} {r['params']:>12,} "
                     f"{r['macs']:>14,}  {r['rf_size']}/{r['rf_jump']}/{_start(r)}")
    total_p = sum(r["params"] for r in rows)
    total_m = sum(r["macs"] for r in rows)
    lines.append("-" * len(head))
    lines.append(f"{'total':<{w}} {'':<8} {'':>16} {total_p:>12,} {total_m:>14,}")
    return "\n".join(lines)
