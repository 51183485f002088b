"""``python -m langchain_darwin.cli``, the same as ``darwin``."""

import sys

from langchain_darwin.cli import main

sys.exit(main())
