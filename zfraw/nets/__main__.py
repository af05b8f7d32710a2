"""Print an architecture's summary: python -m zfraw.nets zf [--classes 1000] [--width 1.0]."""
import argparse

from . import ARCHS, build


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m zfraw.nets", description=__doc__)
    parser.add_argument("arch", choices=ARCHS)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--width", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(build(args.arch, num_classes=args.classes, width=args.width).summary_text())


if __name__ == "__main__":
    main()
