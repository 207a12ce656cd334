"""``python -m rewardlab.tasks [N] [--seed S]``: print N (default 5) example pairs of the built-in task.

Files of every data form come from ``rewardlab sample-data --output DIR`` (``rewardlab.tasks.sample``).
"""

import argparse

from rewardlab.tasks.gold import print_examples

parser = argparse.ArgumentParser(
    prog="python -m rewardlab.tasks",
    description="Print example preference pairs of rewardlab's built-in task, with the gold reward g of each response.",
    epilog="To write train/test files of every data form (pairs, rankings, ratings, labels): "
           "rewardlab sample-data --output DIR",
)
parser.add_argument("n", nargs="?", type=int, default=5, help="number of pairs to print (default 5)")
parser.add_argument("--seed", type=int, default=1, help="seed of the pairs (default 1)")
args = parser.parse_args()
if args.n < 0:
    parser.error(f"N must be >= 0, got {args.n}")
print_examples(args.n, seed=args.seed)
