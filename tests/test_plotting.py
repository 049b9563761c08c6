"""Plots: correct normalisation by quadrature, files written, data drawn where promised."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from mme_numba import figstyle, plotting


def gauss_energy(mu, s):
    """Energy of N(mu, s²) (any additive constant: normalisation is by quadrature)."""
    return lambda X: 0.5 * np.sum(((np.asarray(X) - mu) / s) ** 2, axis=1) + 7.0


class FakeModel:
    """Duck-typed fitted model: energy + support_ + history_ are all plotting reads."""

    support_ = (np.array([-5.0]), np.array([5.0]))
    history_ = [{"epoch": i + 1, "chi2": 1.0 / (i + 1), "acceptance": 0.3 + 0.001 * i,
                 "step_size": 3.0,
                 "entropy": None if i % 2 else 1.5 - 0.01 * i} for i in range(40)]

    def energy(self, X):
        return gauss_energy(1.0, 0.5)(X)


def test_plot_density_1d_curve_integrates_to_one(tmp_path):
    out = tmp_path / "d.png"
    X = np.random.default_rng(0).normal(1.0, 0.5, (300, 1))
    fig = plotting.plot_density_1d(FakeModel(), X, path=out,
                                   true_density=lambda x: np.exp(-2 * (x - 1) ** 2))
    assert isinstance(fig, Figure) and out.stat().st_size > 1000
    ax = fig.axes[0]
    xs, ys = ax.lines[0].get_data()
    assert np.trapezoid(ys, xs) == pytest.approx(1.0, abs=1e-6)
    # N(1, 0.5²) exactly (normalisation by quadrature; the +7 offset in the energy drops out)
    np.testing.assert_allclose(ys, np.exp(-2 * (xs - 1) ** 2) / (0.5 * np.sqrt(2 * np.pi)),
                               atol=1e-9)
    assert len(ax.lines) == 2 and len(ax.patches) == 50  # learned + true, 50 bars
    with pytest.raises(ValueError):
        plotting.plot_density_1d(gauss_energy(0, 1), X)    # bare function needs support


def test_plot_density_2d_writes_png(tmp_path):
    X = np.random.default_rng(1).normal(size=(100, 2))
    fig = plotting.plot_density_2d(gauss_energy(0.0, 1.0), X, support=(-4, 4), n_grid=41,
                                   path=tmp_path / "d2.png")
    assert (tmp_path / "d2.png").stat().st_size > 1000
    assert len(fig.axes) == 2  # density + colorbar
    # scalar support broadcasts to the 2-d box; the peak is the standard normal's 1/(2π)
    cs = fig.axes[0].collections[0]
    assert cs.levels.max() >= 1 / (2 * np.pi) * 0.95


def test_plot_history_panels_skip_missing_values(tmp_path):
    fig = plotting.plot_history(FakeModel(), path=tmp_path / "h.png")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["χ² (Eq. 5)", "acceptance rate", "entropy S (nats)"]  # constant step: no panel
    assert fig.axes[0].get_yscale() == "log"
    x_ent, _ = fig.axes[2].lines[0].get_data()
    assert len(x_ent) == 20                            # None entries are skipped
    with pytest.raises(ValueError):
        plotting.plot_history([])


def test_plot_image_grid(tmp_path):
    imgs = np.random.default_rng(2).uniform(size=(10, 64))
    fig = plotting.plot_image_grid(imgs, shape=(8, 8), path=tmp_path / "g.png", title="t")
    assert len(fig.axes) == 12                          # 4 columns × 3 rows, 2 empty
    assert sum(len(ax.images) for ax in fig.axes) == 10
    np.testing.assert_array_equal(fig.axes[3].images[0].get_array(), imgs[3].reshape(8, 8))
    with pytest.raises(ValueError):
        plotting.plot_image_grid(imgs, shape=(4, 4))


def test_plot_image_rows_draws_each_row_under_its_label(tmp_path):
    rng = np.random.default_rng(3)
    rows = {"epoch 0": rng.uniform(size=(12, 64)), "epoch 800": rng.uniform(size=(3, 64))}
    fig = plotting.plot_image_rows(rows, n_cols=5, path=tmp_path / "r.png", dpi=150)
    assert (tmp_path / "r.png").stat().st_size > 0
    assert len(fig.axes) == 10                          # 2 rows × 5 columns
    assert [ax.get_ylabel() for ax in fig.axes[::5]] == ["epoch 0", "epoch 800"]
    assert [len(ax.images) for ax in fig.axes] == [1] * 5 + [1] * 3 + [0] * 2
    np.testing.assert_array_equal(fig.axes[6].images[0].get_array(),
                                  rows["epoch 800"][1].reshape(8, 8))
    with pytest.raises(ValueError, match="epoch 0"):
        plotting.plot_image_rows({"epoch 0": np.zeros((2, 16))})
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_image_rows({})


def test_save_figure_refuses_unlabelled_axes_and_low_dpi(tmp_path):
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x (data units)")
    with pytest.raises(ValueError, match="y axis"):
        figstyle.save_figure(fig, tmp_path / "f.png")
    ax.set_ylabel("density (1 / data unit)")
    with pytest.raises(ValueError, match="dpi"):
        figstyle.save_figure(fig, tmp_path / "f.png", dpi=100)
    assert not (tmp_path / "f.png").exists()
    figstyle.save_figure(fig, tmp_path / "f.png", svg=True)
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    from matplotlib.image import imread
    assert imread(tmp_path / "f.png").shape[0] >= 150 * fig.get_figheight() * 0.8
    images = Figure()                                   # image panels have no ticks: no labels
    for a in images.subplots(1, 2):
        a.imshow(np.zeros((4, 4)))
        a.set_xticks([]), a.set_yticks([])
    figstyle.save_figure(images, tmp_path / "i.png")
    shared = Figure()                                   # a figure-level label serves all panels
    for a in shared.subplots(1, 2, sharey=True):
        a.plot([0, 1], [1, 0])
        a.set_xlabel("epoch")
    shared.supylabel("entropy (nats)")
    figstyle.save_figure(shared, tmp_path / "s.png")


def test_every_plotting_figure_labels_its_axes(tmp_path):
    X = np.random.default_rng(0).normal(1.0, 0.5, (200, 1))
    figs = [plotting.plot_history(FakeModel()), plotting.plot_density_1d(FakeModel(), X),
            plotting.plot_density_2d(gauss_energy(0.0, 1.0), np.zeros((5, 2)), support=(-3, 3),
                                     n_grid=21)]
    for fig in figs:
        assert figstyle.unlabelled_axes(fig) == []
    legend = figs[1].axes[0].get_legend()               # the legend sits beside the data
    assert legend.get_bbox_to_anchor().x0 > figs[1].axes[0].get_window_extent().x1
