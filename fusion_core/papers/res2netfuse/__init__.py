"""Res2NetFuse (paper 002, Song et al. 2021): network and rules in ``model.py``, loss in ``loss.py``, protocols
and the training CLI in ``train.py``, Tables I–IV and figures in ``experiment.py``; see README.md."""
from .. import Paper
from . import model  # noqa: F401  (registers the method and the res2netfuse/<rule> rules)

PAPER = Paper(name="res2netfuse", number="002", title="Res2NetFuse: A Fusion Method for Infrared and Visible "
              "Images", methods=("res2netfuse",), convention="res2netfuse",
              notebooks=("02_res2netfuse", "02a_res2netfuse_table2", "02b_res2netfuse_table3"),
              splits=("test", "recon_test", "colour", "train_single_image", "train_many_images"))
