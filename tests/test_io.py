

def test_save_figure_palette_is_exact_for_a_figure_with_few_colours(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from fusion_core import io

    fig = plt.figure(figsize=(1, 1))
    fig.figimage(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4, cmap="gray", vmin=0, vmax=255)
    plain = np.asarray(Image.open(io.save_figure(fig, tmp_path / "plain.png", 50)).convert("RGB"))
    small = Image.open(io.save_figure(fig, tmp_path / "palette.png", 50, colours=256))
    assert small.mode == "P" and np.array_equal(np.asarray(small.convert("RGB")), plain)
    lossy = np.asarray(Image.open(io.save_figure(fig, tmp_path / "eight.png", 50, colours=8)).convert("RGB"))
    assert not np.array_equal(lossy, plain)  # fewer colours than the figure has: not exact
    plt.close(fig)
