"""``python -m rewardlab.optimize …`` runs the same commands as ``rewardlab optimize …``."""

from rewardlab.optimize.cli import app

if __name__ == "__main__":
    app()
