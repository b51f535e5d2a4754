"""`python -m pravah.localcluster serve --state DIR`: the daemon behind `pravah dev up`."""

import sys

from .platform import main

sys.exit(main())
