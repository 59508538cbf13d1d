"""What the charts show, read from their matplotlib figures (no pixels compared)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection

from mtlrec.experiments import benchmark, plots
from mtlrec.experiments.synthetic import summarize_synthetic

#: Adult's test AUCs (docs/results/adult.json): ESMM far below six close models
ADULT = {
    "single_task": (0.9099, 0.0003),
    "shared_bottom": (0.9093, 0.0004),
    "omoe": (0.9089, 0.0003),
    "mmoe": (0.9093, 0.0005),
    "cgc": (0.9097, 0.0006),
    "ple": (0.9098, 0.0003),
    "esmm": (0.7917, 0.0090),
}


def auc_summary(values: dict[str, tuple[float, float]], task: str = "income") -> list[dict]:
    return [
        {"model": m, "task": task, "seeds": 3, "parameters": 1, "auc_mean": a, "auc_std": s}
        for m, (a, s) in values.items()
    ]


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def bar_ends(ax) -> tuple[float, float]:
    """The smallest and largest x of the error bars drawn in ``ax``."""
    xs = [
        x
        for c in ax.collections
        if isinstance(c, LineCollection)
        for segment in c.get_segments()
        for x in segment[:, 0]
    ]
    return min(xs), max(xs)


def test_auc_axis_stays_within_zero_and_one() -> None:
    near_one = {"a": (0.998, 0.003), "b": (0.9995, 0.0004), "c": (0.97, 0.01)}
    ax = plots.benchmark_figure(auc_summary(near_one)).axes[0]
    low, high = ax.get_xlim()
    assert high <= 1.0 and low >= 0.0
    ax = plots.benchmark_figure(auc_summary({"a": (0.01, 0.02), "b": (0.03, 0.01)})).axes[0]
    assert ax.get_xlim()[0] >= 0.0


def test_an_outlier_does_not_squash_the_close_models() -> None:
    ax = plots.benchmark_figure(auc_summary(ADULT)).axes[0]
    low, high = ax.get_xlim()
    close = [mean for name, (mean, _) in ADULT.items() if name != "esmm"]
    assert low <= min(close) and max(close) <= high <= 1.0
    assert high - low < 0.01  # the six close models spread over the axis, not one dot
    shown = texts(ax)
    assert "0.7917 ± 0.0090" in shown  # the outlier's value is printed
    assert "0.7917, off scale" in shown  # and marked at the axis edge
    assert all(f"{m:.4f} ± {s:.4f}" in shown for m, s in ADULT.values())


def test_on_scale() -> None:
    means, stds = np.array([m for m, _ in ADULT.values()]), np.array([s for _, s in ADULT.values()])
    shown = plots.on_scale(means, stds)
    assert [name for name, on in zip(ADULT, shown, strict=True) if not on] == ["esmm"]
    spread = np.array([0.70, 0.72, 0.75, 0.78, 0.80, 0.68])  # no outlier: all shown
    assert plots.on_scale(spread, np.full(6, 0.02)).all()
    assert plots.on_scale(np.array([0.9, 0.5]), np.zeros(2)).all()  # too few to judge


def funnel_summary(truth: bool) -> list[dict]:
    ratios = {"naive_cvr": (1.3131, 1.5667), "esmm": (0.3862, 0.0982), "mmoe": (1.97, 0.61)}
    rows = []
    for model, (ratio, std) in ratios.items():
        conversion = {"model": model, "task": "conversion", "seeds": 3, "parameters": 1}
        conversion |= {"auc_mean": 0.7, "auc_std": 0.02, "cvr_auc_clicked_mean": 0.7}
        conversion |= {"cvr_auc_clicked_std": 0.02}
        conversion |= {"cvr_calibration_clicked_mean": ratio, "cvr_calibration_clicked_std": std}
        if truth:
            conversion |= {"cvr_mean_true_clicked_mean": 0.05, "cvr_mean_true_clicked_std": 0.0}
        rows.append(conversion)
    return rows


def test_funnel_ratio_bars_stay_positive_and_the_axis_fits_them() -> None:
    fig = plots.funnel_figure(funnel_summary(truth=True))
    ax = next(a for a in fig.axes if "pCVR" in a.get_title())
    low, high = ax.get_xlim()
    assert low >= 0.0 and high < 1.2 * (1.3131 + 1.5667)  # not run out to 8
    assert bar_ends(ax)[0] >= 0.0  # 1.3131 - 1.5667 < 0 is cut at 0
    assert "bars cut at 0" in ax.get_title()
    assert "1.3131 ± 1.5667" in texts(ax)  # the whole std is still printed


def test_the_calibration_label_says_observed_without_ground_truth() -> None:
    titles = [a.get_title() for a in plots.funnel_figure(funnel_summary(truth=False)).axes]
    ratio = next(t for t in titles if "pCVR" in t)
    assert "observed CVR" in ratio and "true" not in ratio
    titles = [a.get_title() for a in plots.funnel_figure(funnel_summary(truth=True)).axes]
    assert any("pCVR / true CVR" in t for t in titles)


def synthetic_records(balancer: str = "equal") -> list[dict]:
    return [
        {
            "model": m,
            "correlation": p,
            "seed": s,
            "parameters": 1,
            "train_loss": [8.0, 3.0, 1.2, 0.6 + 0.1 * i],
            "test_loss": 1.0 + 0.1 * s + i,
            "balancer": balancer,
        }
        for i, m in enumerate(["shared_bottom", "omoe", "mmoe"])
        for p in (0.5, 1.0)
        for s in range(2)
    ]


def test_log_ticks_are_plain_decimals() -> None:
    records = synthetic_records()
    fig = plots.synthetic_figure(records, summarize_synthetic(records))
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [
        t.get_text()
        for t in ax.yaxis.get_majorticklabels() + ax.yaxis.get_minorticklabels()
        if t.get_text()
    ]
    assert len(labels) >= 2
    for label in labels:
        float(label)  # "0.6", "2", not "$\mathdefault{6\times10^{-1}}$"


def overlaps(box, other) -> bool:
    return box.x0 < other.x1 and other.x0 < box.x1 and box.y0 < other.y1 and other.y0 < box.y1


def training_records(balancer: str = "equal") -> list[dict]:
    return [
        {
            "model": model,
            "seed": 0,
            "task": "click",
            "balancer": balancer,
            "loss_curve": [0.9, 0.5, 0.4, 0.35],
            "validation_metric": "auc",
            "validation_curve": [0.6, 0.7, 0.72, 0.73],
        }
        for model in ("shared_bottom", "mmoe", "ple")
    ]


def test_legends_lie_outside_every_panel() -> None:
    records = synthetic_records()
    for fig in (
        plots.training_curves_figure(training_records()),
        plots.synthetic_figure(records, summarize_synthetic(records)),
    ):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert len(legends) == 1
        box = legends[0].get_window_extent(renderer)
        assert not any(overlaps(box, ax.get_window_extent(renderer)) for ax in fig.axes)
        assert box.x1 <= fig.bbox.x1 + 1  # and inside the figure


def test_titles_name_a_balancer_other_than_equal() -> None:
    summary = auc_summary(ADULT)
    assert "balancer pcgrad" in plots.benchmark_figure(summary, "pcgrad").get_suptitle()
    assert "balancer" not in plots.benchmark_figure(summary, "equal").get_suptitle()
    assert "balancer" not in plots.benchmark_figure(summary).get_suptitle()
    title = plots.training_curves_figure(training_records("uncertainty")).get_suptitle()
    assert "balancer uncertainty" in title
    records = synthetic_records("dwa")
    assert (
        "balancer dwa"
        in plots.synthetic_figure(records, summarize_synthetic(records)).get_suptitle()
    )


def test_write_outputs_names_the_balancer_in_the_chart(tmp_path, monkeypatch) -> None:
    titles = []

    def spy(summary, path, balancer=None):
        titles.append(plots.benchmark_figure(summary, balancer).get_suptitle())
        return path

    monkeypatch.setattr(benchmark, "plot_benchmark", spy)
    records = [
        {
            "model": "mmoe",
            "seed": 0,
            "balancer": "pcgrad",
            "task": "click",
            "auc": 0.8,
            "fit_seconds": 1.0,
            "train_samples_per_second": 10.0,
            "parameters": 1,
        }
    ]
    benchmark.write_outputs(records, tmp_path)
    assert titles and "balancer pcgrad" in titles[0]


#: mean gate weights of a two-task PLE, 2 experts per task and 1 shared, two levels
PLE_NAMES = ["level0/click", "level0/buy", "level0/shared", "level1/click", "level1/buy"]
PLE_GRID = np.array(
    [
        [0.3, 0.3, np.nan, np.nan, 0.4],
        [np.nan, np.nan, 0.2, 0.4, 0.4],
        [0.2, 0.2, 0.2, 0.2, 0.2],
        [0.5, 0.1, np.nan, np.nan, 0.4],
        [np.nan, np.nan, 0.3, 0.3, 0.4],
    ]
)


def test_expert_groups_of_ple_gates() -> None:
    assert plots.expert_groups(PLE_NAMES, PLE_GRID) == [
        ("click experts", 0, 2),
        ("buy experts", 2, 4),
        ("shared experts", 4, 5),
    ]
    mmoe = np.full((2, 4), 0.25)
    assert plots.expert_groups(["click", "buy"], mmoe) == []  # one set of experts


def test_gate_heatmap_labels_the_expert_groups() -> None:
    frame = pd.DataFrame(PLE_GRID, index=PLE_NAMES)
    shown = texts(plots.gates_figure(frame).axes[0])
    assert {"click experts", "buy experts", "shared experts"} <= set(shown)
    mmoe = plots.gates_figure({"click": np.full((3, 4), 0.25), "buy": np.full((3, 4), 0.25)})
    assert not any("experts" in t for t in texts(mmoe.axes[0]))


def test_every_model_of_a_chart_has_its_own_colour() -> None:
    """Fifteen architectures (or more) in one chart: no two share a colour."""
    for count in (3, 10, 11, 15, 20, 24):
        colors = plots.series_colors(count)
        assert len(colors) == count and len(set(colors)) == count
    summary = [
        {"model": f"m{i}", "task": "click", "seeds": 1, "auc_mean": 0.7 + i / 100, "auc_std": 0.0}
        for i in range(15)
    ]
    fig = plots.benchmark_figure(summary)
    fig.canvas.draw()
    (ax,) = fig.axes
    drawn = {tuple(line.get_color()) for line in ax.get_lines() if line.get_marker() == "o"}
    assert len(drawn) == 15
