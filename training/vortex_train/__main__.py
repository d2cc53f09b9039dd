"""`python -m vortex_train`."""

import sys

from .cli import main

sys.exit(main())
