"""``python -m zfraw.atlas``: the command line of :func:`zfraw.atlas.main`."""
import sys

from .build import main

sys.exit(main())
