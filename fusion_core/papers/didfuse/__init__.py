"""DIDFuse (paper 001, Zhao et al. 2020): network and rules in ``model.py``, loss in ``loss.py``, protocols and
the training CLI in ``train.py``, Tables III–V and Figs. 3–6 in ``experiment.py``; see README.md."""
from .. import Paper
from . import model  # noqa: F401  (registers the method and the didfuse/<rule> rules)

PAPER = Paper(name="didfuse", number="001", title="When Image Decomposition Meets Deep Learning: A Novel Infrared "
              "and Visible Image Fusion Method", methods=("didfuse",), convention="didfuse",
              notebooks=("01_didfuse", "01a_didfuse_table3_strategies", "01b_didfuse_table4_ablation",
                         "01c_didfuse_fig6_reproducibility"),
              splits=("train", "val", "test_tno", "test_flir", "test_nir"))
