"""AMFE (paper 004, "Learning attention guided deep multi-scale feature ensemble for infrared and visible image
fusion"): network, edge operator and rules in ``model.py``, the authors' journal model MFEIF with its released
weights in ``mfeif.py``, losses in ``loss.py``, protocols and the training CLI in ``train.py``, Tables 1–2 and
figures in ``experiment.py``; see README.md."""
from .. import Paper
from . import mfeif, model  # noqa: F401  (registers the methods amfe and mfeif)

PAPER = Paper(name="amfe", number="004", title="Learning attention guided deep multi-scale feature ensemble for "
              "infrared and visible image fusion", methods=("amfe", "mfeif"), convention="amfe",
              notebooks=("04_amfe", "04a_amfe_table2_ablation"),
              splits=("stage1_train", "stage1_val", "train", "val", "test_tno25"))
