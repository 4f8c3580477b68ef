"""`python -m mnist_models.bench.upgrade`: two sides measured side by side and B judged against A (command.main)."""

import sys

from mnist_models.bench.upgrade.command import main

sys.exit(main())
