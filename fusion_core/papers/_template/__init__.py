"""TEMPLATE of a paper folder: copy it to ``fusion_core/papers/<name>/`` and follow CONTRIBUTING, "Adding a paper".

In the copy, replace this docstring with one line per file (see ``papers/didfuse/__init__.py``) and uncomment
the statements below, filling every ``<...>``. The leading underscore of ``_template`` keeps this folder out of
:data:`fusion_core.papers.PAPERS`, and nothing here registers a method or a rule until uncommented.
"""
# from .. import Paper
# from . import model  # noqa: F401  (registers the method and the <name>/<rule> rules)
#
# PAPER = Paper(name="<name>", number="<NNN: ../shared/specs/spec_NNN.md>", title="<the paper's title>",
#               methods=("<name>",), convention="<a key of fusion_core.metrics.conventions.CONVENTIONS>",
#               notebooks=("<NN>_<name>",), splits=("test",))
