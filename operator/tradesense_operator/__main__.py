"""`python -m tradesense_operator` is the CLI.

Holds no logic of its own: everything is in `cli`.
"""

import sys

from tradesense_operator.cli import main

sys.exit(main())
