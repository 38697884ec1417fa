"""DIDFuse (paper 001): experiment driver in ``experiment.py``; the paper's Tables III–V in ``reported.csv``."""
