"""``python -m zfraw.report``: the command line of :func:`zfraw.report.main`."""
import sys

from .pipeline import main

sys.exit(main())
