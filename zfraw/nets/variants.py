"""Architecture variants as data: the rows of the paper's Tables 2 and 3 for any base net.

An architecture name is a base name followed by variants, each after a ``+``::

    zf-64                      the base (zfraw.nets.archs)
    zf-64+no-conv34            Table 3: layers 3 and 4 removed
    zf-64+no-fc67              Table 3: the two fully connected layers 6 and 7 removed
    zf-64+no-conv34+no-fc67    Table 3: both removed (variants combine left to right)
    zf-64+fc-half, +fc-double  Table 3: fc6 and fc7 at half and double width
    zf-64+conv345-wide         Tables 2 and 3: conv3, conv4, conv5 at 512, 1024, 512 maps

A variant is a function from a list of layer specs to a new list; channel counts stay the
paper's and ``--width`` scales them all at build time, so ``zf-64+conv345-wide`` at width 0.5
has conv3-5 at 256/512/256. In-channels and in-features are inferred when the net is built, so
removing layers needs no other change.
"""
from __future__ import annotations


def _drop(names):
    """A variant that removes the named layers."""
    def apply(layers):
        missing = set(names) - {name for name, _, _ in layers}
        if missing:
            raise ValueError(f"it has no layer {', '.join(sorted(missing))}")
        return [spec for spec in layers if spec[0] not in names]
    return apply


def _set_out(outs: dict, scale: float = 1.0):
    """A variant that sets (or, with ``scale``, multiplies) the output count of named layers."""
    def apply(layers):
        found = {name for name, _, _ in layers} & set(outs)
        if found != set(outs):
            raise ValueError(f"it has no layer {', '.join(sorted(set(outs) - found))}")
        result = []
        for name, kind, opt in layers:
            if name in outs:
                out = outs[name] if outs[name] is not None else opt["out"]
                opt = dict(opt, out=max(1, int(round(out * scale))))
            result.append((name, kind, opt))
        return result
    return apply


VARIANTS = {
    "no-conv34": (_drop(("conv3", "relu3", "conv4", "relu4")),
                  "Table 3: removed layers 3 and 4 (conv3, conv4)"),
    "no-fc67": (_drop(("fc6", "relu6", "drop6", "fc7", "relu7", "drop7")),
                "Table 3: removed layers 6 and 7 (fc6, fc7)"),
    "fc-half": (_set_out({"fc6": None, "fc7": None}, 0.5), "Table 3: fc6, fc7 at half width"),
    "fc-double": (_set_out({"fc6": None, "fc7": None}, 2.0), "Table 3: fc6, fc7 at double width"),
    "conv345-wide": (_set_out({"conv3": 512, "conv4": 1024, "conv5": 512}),
                     "Tables 2, 3: conv3, conv4, conv5 at 512, 1024, 512 maps"),
}


def split_name(arch: str) -> tuple[str, list]:
    """'zf-64+no-fc67+fc-half' -> ('zf-64', ['no-fc67', 'fc-half'])."""
    base, *variants = arch.split("+")
    return base, variants


def apply_variants(base_spec: dict, arch: str) -> dict:
    """The spec of ``arch`` (a base name and its variants, see the module docstring) from the
    base's spec. Raises ValueError naming an unknown variant or one that does not apply."""
    base, variants = split_name(arch)
    layers = list(base_spec["layers"])
    notes = [base_spec.get("note", base)]
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"unknown variant {v!r} in {arch!r}; variants are "
                             f"{', '.join(VARIANTS)}")
        apply, note = VARIANTS[v]
        try:
            layers = apply(layers)
        except ValueError as e:
            raise ValueError(f"variant {v!r} does not apply to {base}: {e}") from None
        notes.append(note)
    return dict(base_spec, layers=layers, note="; ".join(notes))
