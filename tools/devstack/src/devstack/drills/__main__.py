"""`python -m devstack.drills`: run the drills and print the table."""

import sys

from .cli import main

sys.exit(main())
