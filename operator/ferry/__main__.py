"""`python -m ferry`: run the operator (the same as `ferry operator run`)."""

import sys

from ferry.cli.main import main

sys.exit(main(sys.argv[1:] or ["operator", "run"]))
