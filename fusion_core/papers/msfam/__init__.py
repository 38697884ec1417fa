"""MSFAM (paper 003, Sensors 2022): network, AFB, Semantic Constraint net, NestFuse comparison and rules in
``model.py``; Eq. 1, Eq. 2, Eq. 8 and the Pull–Push loss (Algorithms 1–2) in ``loss.py``; the two-stage protocols
and the training CLI in ``train.py``; the split rules in ``splits.py``; Table 6 in ``experiment.py``; see README.md."""
from .. import Paper
from . import model  # noqa: F401  (registers the methods msfam, nestfuse and the msfam/nestfuse_* rules)

PAPER = Paper(name="msfam", number="003", title="A Multi-Stage Visible and Infrared Image Fusion Network Based on "
              "Attention Mechanism", methods=("msfam", "nestfuse"), convention="msfam",
              notebooks=("03_msfam",), splits=("train", "val", "test", "stage1"))
