"""The leaderboard and the plots take a run's compression (label, method, bits) from its
`config.quantization` record alone: hand-made results whose model_args say nothing about it."""

from __future__ import annotations

import math

import pytest

from fixtures.results import _crows, _write, compression_record
from lm_eval_bias.leaderboard import build_leaderboard, load_runs
from lm_eval_bias.plots import figures

MODEL_ARGS = "pretrained=org/model-70m,revision=step100"  # no quantization=, no bits=: only the record tells


def _results(root, records: dict[str, dict | None]):
    for index, (name, record) in enumerate(records.items()):
        prefs = [1] * 12 if name == "base" else [1] * (12 - index) + [0] * index
        _write(root / name, f"2025-01-01T00-00-{index:02d}.000000", "quantized_hf", MODEL_ARGS, [_crows(prefs)], record)
    return load_runs(root)


def test_label_method_and_bits_come_from_the_record(tmp_path):
    runs = _results(
        tmp_path,
        {
            "base": compression_record("none", "none", {}, 32),
            "rtn3": compression_record(
                "rtn",
                "rtn(bits=3)",
                {"bits": 3, "group_size": None, "symmetric": True, "quantize_lm_head": False},
                3,
                effective=4.5,
            ),
            "novel": compression_record(
                "magic", "magic(level=2)", {"level": 2}, None
            ),  # a method the leaderboard never saw
            "stock": None,  # no record: the checkpoint as it is
        },
    )
    by_label = {run.compression: run for run in runs}
    assert set(by_label) == {"none", "rtn(bits=3)", "magic(level=2)"}
    assert (by_label["rtn(bits=3)"].method, by_label["rtn(bits=3)"].bits) == ("rtn", 3.0)
    assert by_label["magic(level=2)"].method == "magic" and math.isnan(by_label["magic(level=2)"].bits)
    stock = [run for run in runs if run.path.parent.parent.name == "stock"][0]
    assert (stock.compression, stock.method, stock.bits) == ("none", "none", 32.0)


def test_leaderboard_bits_column_is_the_records_weight_bits(tmp_path):
    runs = _results(
        tmp_path,
        {
            "base": compression_record("none", "none", {}, 32),
            "int8": compression_record("dynamic_int8", "dynamic_int8", {}, 8),
            "odd": compression_record("rtn", "rtn(bits=6)", {"bits": 6}, 6),
        },
    )
    wide = build_leaderboard(runs).wide().set_index("compression")
    assert (
        wide.loc["none", "bits"] == 32
        and wide.loc["dynamic_int8", "bits"] == 8
        and wide.loc["rtn(bits=6)", "bits"] == 6
    )
    assert wide.loc["rtn(bits=6)", "method"] == "rtn"


def test_delta_vs_bits_plots_at_the_records_bits(tmp_path):
    runs = _results(
        tmp_path,
        {
            "base": compression_record("none", "none", {}, 32),
            "three": compression_record("rtn", "rtn(bits=3)", {"bits": 3}, 3),
            "six": compression_record("rtn", "rtn(bits=6)", {"bits": 6}, 6),
        },
    )
    long = build_leaderboard(runs, metrics=["stereotype_score"]).long
    figure = figures.delta_vs_bits(long)
    lines = [line for ax in figure.axes for line in ax.get_lines() if line.get_linestyle() == "-"]  # not the zero line
    assert len(lines) == 1  # one method: no side-by-side offset, x is the bits themselves
    assert list(lines[0].get_xdata()) == [3.0, 6.0]
    # stereotype scores: 11 of 12 (rtn(bits=3), written second) and 10 of 12 (rtn(bits=6), third) against 12 of 12
    assert list(lines[0].get_ydata()) == pytest.approx([100 * 11 / 12 - 100, 100 * 10 / 12 - 100])


def test_delta_vs_sparsity_plots_each_method_at_its_target_sparsity(tmp_path):
    def pruned(method, sparsity):
        return compression_record(
            method,
            f"{method}(sparsity={sparsity})",
            {"sparsity": sparsity},
            None,
            details={"target_sparsity": sparsity},
        )

    runs = _results(
        tmp_path,
        {
            "base": compression_record("none", "none", {}, 32),
            "w1": pruned("wanda", 0.1),
            "w5": pruned("wanda", 0.5),
            "m7": pruned("magnitude", 0.7),
            "m3": pruned("magnitude", 0.3),
            "rtn": compression_record("rtn", "rtn(bits=4)", {"bits": 4}, 4),
        },
    )
    long = build_leaderboard(runs, metrics=["stereotype_score"]).long
    assert figures.delta_vs_bits(long) is None  # one weight precision besides the uncompressed run
    figure = figures.delta_vs_sparsity(long)
    lines = {
        tuple(line.get_xdata()): list(line.get_ydata())
        for ax in figure.axes
        for line in ax.get_lines()
        if line.get_linestyle() == "-"
    }
    # two methods sit 0.005 either side of their sparsity (the lower-sparsity method left);
    # deltas: 12 - k of 12 for the k-th file written, k = 1..4
    # (wanda 0.1, wanda 0.5, magnitude 0.7, magnitude 0.3), against 12 of 12; the rtn run (5th) has no sparsity
    wanda = next(v for x, v in lines.items() if x[0] == pytest.approx(0.1 - 0.005))
    magnitude = next(v for x, v in lines.items() if x[0] == pytest.approx(0.3 + 0.005))
    assert wanda == pytest.approx([-100 / 12, -200 / 12]) and magnitude == pytest.approx([-400 / 12, -300 / 12])
    assert len(lines) == 2
    ticks = [tick for tick in figure.axes[0].get_xticks()]
    assert ticks == pytest.approx([0.0, 0.1, 0.3, 0.5, 0.7])


def test_a_record_of_another_shape_is_refused_with_the_file(tmp_path):
    _write(
        tmp_path,
        "2025-01-01T00-00-00.000000",
        "quantized_hf",
        MODEL_ARGS,
        [_crows([1] * 12)],
        {"method": "rtn", "bits": 4},
    )  # written before the schema: re-run it
    with pytest.raises(
        ValueError,
        match=r"results_2025-01-01T00-00-00.000000.json: config.quantization is not a "
        r"compression record",
    ):
        load_runs(tmp_path)
