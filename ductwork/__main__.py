"""`python -m ductwork`: the same as the `ductwork` command."""

from __future__ import annotations

import sys

from ductwork.cli.main import main

sys.exit(main())
