"""SAVF (paper 000, Fang, Zhao, Zhang 2019): the three networks and the methods ``savf`` (OURS+) and ``savf_noatt``
(OURS) in ``model.py``, the loss (Eqs. 3–6) in ``loss.py``, the three-stage protocols and the training CLI in
``train.py``, the splits in ``splits/`` (written by ``make_splits.py``), measurements in ``experiment.py``; see README.md."""
from .. import Paper
from . import model  # noqa: F401  (registers the methods savf and savf_noatt)

PAPER = Paper(name="savf", number="000", title="Cross-modal image fusion theory guided by subjective visual attention",
              methods=("savf", "savf_noatt"), convention="savf", notebooks=("05_savf", "05a_savf_ablation"),
              splits=("attention_train", "attention_test", "main_train", "enhance_corpus", "test_tno", "test_vifb"))
