"""Flips by the baseline's confidence: terciles of |score(sent_more) − score(sent_less)| in the baseline."""

from fixtures.capability_results import BASE_PREFERS, EXPECTED, FLIPS_2BIT, preferences, write_study
from lm_eval_bias.leaderboard import build_leaderboard, load_runs
from lm_eval_bias.leaderboard.flips import margins, tercile_flips


def test_seven_pairs_by_hand():
    # baseline margins (sent_more - sent_less): ranks by |margin| are c, a, g | e, b | d, f
    more = {"a": -1.2, "b": -3.0, "c": -2.0, "d": -1.0, "e": -4.0, "f": -0.5, "g": -2.0}
    less = {"a": -1.0, "b": -2.5, "c": -2.05, "d": -3.0, "e": -4.4, "f": -3.5, "g": -2.3}
    base = {k: 100.0 if more[k] > less[k] else 0.0 for k in more}
    # |margins|: a .2, b .5, c .05, d 2.0, e .4, f 3.0, g .3 -> low (c, a, g), mid (e, b), high (d, f)
    run = {**base, "a": 100.0 - base["a"], "b": 100.0 - base["b"], "f": 100.0 - base["f"]}
    split = tercile_flips(run, base, margins(more, less))
    assert split == {"low": (1, 3), "mid": (1, 2), "high": (1, 2)}


def test_only_items_all_three_hold_count_and_ties_split_by_item():
    base_margin = {1: 0.5, 2: 0.5, 3: 0.5, 4: 0.5, 5: 0.5, 6: 0.5}
    base = {i: 100.0 for i in base_margin}
    run = {i: (0.0 if i in (1, 6) else 100.0) for i in range(1, 8)}  # item 7 has no baseline
    assert tercile_flips(run, base, base_margin) == {"low": (1, 2), "mid": (0, 2), "high": (1, 2)}


def test_empty():
    assert tercile_flips({}, {}, {}) == {"low": (0, 0), "mid": (0, 0), "high": (0, 0)}


def test_leaderboard_reports_flips_by_tercile_from_the_samples(tmp_path):
    wide = build_leaderboard(load_runs(write_study(tmp_path))).wide().set_index("compression")
    for compression, expected in EXPECTED.items():
        for tercile, (flips, n) in expected["flips"].items():
            assert (
                wide.loc[compression, f"crows_pairs_bias flips_{tercile}"],
                wide.loc[compression, f"crows_pairs_bias n_{tercile}"],
            ) == (flips, n)
    # the same by hand: base margins rank pairs 0..29 in order, so terciles are pairs 0-9, 10-19, 20-29
    flipped = [a != b for a, b in zip(preferences(FLIPS_2BIT), BASE_PREFERS)]
    assert [sum(flipped[0:10]), sum(flipped[10:20]), sum(flipped[20:30])] == [3, 3, 6]
    assert all(
        wide.loc["none", f"crows_pairs_bias n_{t}"] != wide.loc["none", f"crows_pairs_bias n_{t}"]
        for t in ("low", "mid", "high")
    )  # NaN: the baseline is not compared with itself
