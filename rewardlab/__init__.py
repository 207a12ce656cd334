"""rewardlab: train, analyse, evaluate and use reward models for LLMs."""

__version__ = "0.1.0"
