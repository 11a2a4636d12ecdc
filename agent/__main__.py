"""`python -m agent` is `pole-agent`."""

import sys

from agent.cli import main

sys.exit(main())
