"""`python -m tradesense_operator` is the CLI."""

import sys

from tradesense_operator.cli import main

sys.exit(main())
