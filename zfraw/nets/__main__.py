"""Print an architecture's summary: python -m zfraw.nets ARCH [--classes 1000] [--width 1.0].

ARCH is a base architecture with optional variants (``zf-64+no-conv34+fc-half``);
``--variants`` lists the variants.
"""
import argparse
import sys

from . import ARCHS, build, get_spec
from .variants import VARIANTS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zfraw.nets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", nargs="?", help=f"{' | '.join(ARCHS)}, optionally +VARIANT...")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--variants", action="store_true", help="list the variants")
    args = parser.parse_args(argv)
    if args.variants or not args.arch:
        for name, (_, note) in VARIANTS.items():
            print(f"+{name:14s} {note}")
        return 0
    try:
        net = build(args.arch, num_classes=args.classes, width=args.width)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.arch}: {get_spec(args.arch)['note']}")
    print(net.summary_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
