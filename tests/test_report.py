"""Figures and tables: the panel layout, the error maps' colour scales, the mean's label."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dhif.report import PANELS_PER_ROW, _panel_grid, error_figure, format_table  # noqa: E402


@pytest.mark.parametrize("count", range(1, 16))
def test_panels_fill_their_rows_evenly(count):
    fig, axes = _panel_grid(plt, count, 1, 1)
    rows, columns = axes.shape
    plt.close(fig)
    assert columns <= PANELS_PER_ROW and rows == -(-count // PANELS_PER_ROW)
    assert rows * columns - count < rows  # at most one empty place a row (7 panels: 4 + 3, not 5 + 2)


def test_each_methods_error_map_has_its_own_scale():
    rng = np.random.default_rng(0)
    truth = rng.random((4, 16, 16))
    noise = {"dhif": 0.001, "bicubic": 0.1, "cs": 0.01}
    named = {name: truth + rng.normal(0, sigma, truth.shape) for name, sigma in noise.items()}
    fig = error_figure("scene", truth, named, plt)
    images = [image for ax in fig.axes for image in ax.images]
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    plt.close(fig)
    tops = [image.get_clim()[1] for image in images]
    for (name, sigma), top, title in zip(noise.items(), tops, titles):
        assert sigma < top < 3 * sigma, (name, top)  # its own 99.5th percentile, not the worst method's
        assert f"colour scale 0 to {top:.3g}" in title


def test_the_mean_says_how_many_scenes_it_covers():
    rows = [{"scene": s, "method": "cs", **{k: 1.0 for k in ("psnr", "sam", "ergas", "ssim", "rmse", "uiqi",
                                                                "seconds")}} for s in ("a", "b")]
    assert "mean of 2" in format_table(rows).splitlines()[-1]
