"""``python -m rewardlab.tasks [N]``: print N (default 5) example pairs of the built-in task."""

import sys

from rewardlab.tasks.gold import print_examples

print_examples(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
