"""`python -m devstack.bench`: run the benchmarks and print the table."""

import sys

from .run import main

sys.exit(main())
