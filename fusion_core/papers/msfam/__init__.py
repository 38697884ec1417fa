"""MSFAM (paper 003, Sensors 2022): network, AFB, Semantic Constraint net, NestFuse comparison and rules in
``model.py``; Eq. 1, Eq. 2, Eq. 8 and the Pull–Push loss (Algorithms 1–2) in ``loss.py``; the two-stage protocols
and the training CLI in ``train.py``; the split rules in ``splits.py``; Tables 1-7 and Figs 6-9 in
``experiment.py``; see README.md."""
from .. import Paper
from . import model  # noqa: F401  (registers the methods msfam, nestfuse and the msfam/nestfuse_* rules)

PAPER = Paper(name="msfam", number="003", title="A Multi-Stage Visible and Infrared Image Fusion Network Based on "
              "Attention Mechanism", methods=("msfam", "nestfuse"), convention="msfam",
              notebooks=("03_msfam", "03a_msfam_table1_stages", "03b_msfam_table2_attention",
                         "03c_msfam_table3_loss", "03d_msfam_tables4_5_weights"),
              splits=("train", "val", "test", "stage1"))
