"""Evaluation of reward models: pure metrics (``metrics``), RewardBench scoring (``rewardbench``),
scoring data with a model (``evaluate``) and HTML reports (``report``).

Import the submodules directly; this package file stays free of heavy imports.
"""
