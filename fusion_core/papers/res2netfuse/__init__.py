"""Res2NetFuse (paper 002): experiment driver in ``experiment.py``; the paper's Tables II–IV in ``reported.csv``."""
