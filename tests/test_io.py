

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


def test_save_figure_stores_matplotlibs_pixels_losslessly_in_fewer_bytes(tmp_path):
    import io as _io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from fusion_core import io

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.random.default_rng(0).random((32, 48)), cmap="viridis")
    ax.set_title("a figure")
    raw = _io.BytesIO()
    fig.savefig(raw, format="png", dpi=60, bbox_inches="tight", metadata={"Software": None})
    path = io.save_figure(fig, tmp_path / "fig.png", 60)
    stored, reference = Image.open(path), Image.open(raw)
    assert reference.mode == "RGBA" and stored.mode == "RGB"  # an opaque figure loses only its constant alpha
    assert np.array_equal(np.asarray(stored.convert("RGBA")), np.asarray(reference))
    assert path.stat().st_size < len(raw.getvalue())
    assert io.save_figure(fig, tmp_path / "again.png", 60).read_bytes() == path.read_bytes()
    fig.patch.set_alpha(0.0)  # a transparent background keeps its alpha
    clear = Image.open(io.save_figure(fig, tmp_path / "clear.png", 60))
    assert clear.mode == "RGBA" and clear.getchannel("A").getextrema()[0] < 255
    plt.close(fig)
