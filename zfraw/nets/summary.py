"""Shapes, parameter counts, multiply-adds and receptive fields, from the layer list.

Receptive field recurrence, per spatial axis, through a layer with window (k, s, p):
    size_out  = size_in + (k - 1) * jump_in
    jump_out  = jump_in * s
    start_out = start_in - p * jump_in
where ``start`` is the input coordinate of the first pixel seen by output position 0 (negative
when padding reaches outside the image). The input itself is (size 1, jump 1, start 0).
"""
from __future__ import annotations


def propagate_shapes(layers, input_shape) -> list[tuple]:
    """[input_shape, out_shape of layer 0, ...]; raises a clear error where a layer does not fit."""
    shapes = [tuple(input_shape)]
    for layer in layers:
        shapes.append(tuple(layer.output_shape(shapes[-1])))
    return shapes


def summarize(net) -> list[dict]:
    rows = []
    size, jump, start = 1, 1, 0
    for layer, in_shape, out_shape in zip(net.layers, net.shapes[:-1], net.shapes[1:]):
        k, s, p = layer.window(in_shape)
        size, jump, start = size + (k - 1) * jump, jump * s, start - p * jump
        rows.append(dict(name=layer.name, kind=layer.kind, out_shape=out_shape,
                         params=sum(int(v.size) for v in layer.params.values()),
                         macs=layer.macs(in_shape), rf_size=size, rf_jump=jump, rf_start=start))
    return rows


def format_summary(net) -> str:
    rows = summarize(net)
    head = f"{'layer':<8} {'kind':<8} {'output':>16} {'params':>12} {'mult-adds':>14}  {'receptive field (size/jump/start)'}"
    lines = [f"{net.arch}: input {net.input_shape}, {net.num_classes} classes", head, "-" * len(head)]
    for r in rows:
        shape = "x".join(map(str, r["out_shape"]))
        lines.append(f"{r['name']:<8} {r['kind']:<8} {shape:>16} {r['params']:>12,} {r['macs']:>14,}"
                     f"  {r['rf_size']}/{r['rf_jump']}/{r['rf_start']}")
    total_p = sum(r["params"] for r in rows)
    total_m = sum(r["macs"] for r in rows)
    lines.append("-" * len(head))
    lines.append(f"{'total':<8} {'':<8} {'':>16} {total_p:>12,} {total_m:>14,}")
    return "\n".join(lines)
