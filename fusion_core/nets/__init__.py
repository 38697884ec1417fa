"""Building blocks shared by the papers' networks (``blocks.py``); each network lives in ``papers/<p>/model.py``."""
