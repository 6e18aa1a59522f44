"""docs/errors.md, "Data, options and metadata": each bad input, the one line it gets, and that nothing is written.

In-process checks of the validation functions; tests/integration/test_cli_errors.py feeds a few of the
same inputs to the stock ``lm_eval`` command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_eval_bias import _plugin_hook
from lm_eval_bias.cli import main
from lm_eval_bias.data import load_crows_pairs
from lm_eval_bias.data.bbq import load_bbq
from lm_eval_bias.data.sources import benchmark_file
from lm_eval_bias.data.stereoset import load_stereoset
from lm_eval_bias.errors import BiasDataError, BiasError, BiasInputTooLongError, BiasOptionError, GroupMetricError

HEADER = ",sent_more,sent_less,stereo_antistereo,bias_type,annotations,anon_writer,anon_annotators\n"


def crows_csv(tmp_path: Path, *rows: str, raw: bytes | None = None) -> Path:
    path = tmp_path / "crows_pairs" / "crows_pairs_anonymized.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw if raw is not None else (HEADER + "".join(rows)).encode("utf-8"))
    return path


GOOD = "7,A man cried.,A woman cried.,stereo,gender,[],a0,[]\n"


# ------------------------------------------------------------------ one line, no traceback


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, *args):
        self.calls.append(args)


def test_excepthook_prints_our_error_as_one_line(capsys, monkeypatch):
    monkeypatch.delenv("LM_EVAL_BIAS_TRACEBACK", raising=False)
    monkeypatch.delenv("LMEVAL_LOG_LEVEL", raising=False)
    monkeypatch.setattr("sys.argv", ["lm_eval"])
    previous = Recorder()
    hook = _plugin_hook._ExceptHook(previous)
    error = BiasDataError("data.csv: data row 2 (index 7), column 'sent_more':\n  bad")
    hook(type(error), error, None)
    assert capsys.readouterr().err == "lm-eval-bias: data.csv: data row 2 (index 7), column 'sent_more': bad\n"
    assert previous.calls == []
    other = KeyError("not ours")
    hook(KeyError, other, None)  # every other exception keeps Python's report
    assert previous.calls == [(KeyError, other, None)]


@pytest.mark.parametrize(
    "env, argv",
    [({"LM_EVAL_BIAS_TRACEBACK": "1"}, []), ({"LMEVAL_LOG_LEVEL": "debug"}, []), ({}, ["--verbosity", "DEBUG"])],
)
def test_traceback_on_request(env, argv, capsys, monkeypatch):
    for name in ("LM_EVAL_BIAS_TRACEBACK", "LMEVAL_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.argv", ["lm_eval", *argv])
    previous = Recorder()
    error = BiasOptionError("--metadata: unknown key 'x'")
    _plugin_hook._ExceptHook(previous)(type(error), error, None)
    assert previous.calls == [(BiasOptionError, error, None)] and capsys.readouterr().err == ""


def test_every_user_error_type_is_ours():
    from lm_eval_bias.distillation.student import VocabularyMismatchError
    from lm_eval_bias.model_wrappers.loading import ArchitectureMismatchError
    from lm_eval_bias.model_wrappers.quantizers.config import QuantizationError
    from lm_eval_bias.study.config import StudyConfigError
    from lm_eval_bias.study.executors import ExecutorUnavailable

    for cls in (QuantizationError, ArchitectureMismatchError, StudyConfigError, ExecutorUnavailable):
        assert issubclass(cls, BiasError) and issubclass(cls, ValueError)
    assert issubclass(VocabularyMismatchError, BiasError)


# ------------------------------------------------------------------------------- data


@pytest.mark.parametrize(
    "row, message",
    [
        (
            "7,A man\x00 cried.,A woman cried.,stereo,gender,[],a0,[]\n",
            "data row 1 (index 7), column 'sent_more': control character(s) U+0000 (NUL) in the sentence",
        ),
        (
            "7,A man cried.,A woman\x07 cried.,stereo,gender,[],a0,[]\n",
            "data row 1 (index 7), column 'sent_less': control character(s) U+0007 in the sentence",
        ),
        (
            "7,A man cried.,A man cried.,stereo,gender,[],a0,[]\n",
            "data row 1 (index 7): sent_more and sent_less are the same sentence 'A man cried.'",
        ),
    ],
)
def test_crows_pairs_bad_sentences_name_the_row(tmp_path, row, message):
    path = crows_csv(tmp_path, row)
    with pytest.raises(BiasDataError) as caught:
        load_crows_pairs(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_crows_pairs_duplicated_pair_is_a_warning_check_data_names(tmp_path, capsys):
    crows_csv(tmp_path, GOOD, "9,Other.,Others.,stereo,age,[],a0,[]\n", GOOD.replace("7,", "12,", 1))
    frame = load_crows_pairs(tmp_path / "crows_pairs" / "crows_pairs_anonymized.csv")
    assert len(frame) == 3  # both copies are scored
    assert main(["check-data", str(tmp_path), "--benchmarks", "crows_pairs"]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: " in out and "data row 3 (index 12) repeats the pair of data row 1 (index 7); both are scored" in out
    )


def test_invalid_utf8_names_line_and_row(tmp_path):
    path = crows_csv(
        tmp_path, raw=(HEADER + GOOD).encode() + b"8,A man \xff cried.,A woman cried.,stereo,gender,[],a0,[]\n"
    )
    with pytest.raises(BiasDataError) as caught:
        load_crows_pairs(path)
    assert str(caught.value).startswith(f"{path}: line 3 (data row 2), column 9: byte 0xff is not valid UTF-8")
    bbq = tmp_path / "Age.jsonl"
    bbq.write_bytes(b'{"a": 1}\n{"b": "\xc3"}\n')
    with pytest.raises(BiasDataError, match=r"Age.jsonl: line 2, column 8: byte 0xc3 is not valid UTF-8"):
        load_bbq(bbq)


def test_truncated_stereoset_json_is_bad_json_not_jsonl(tmp_path):
    path = tmp_path / "stereoset" / "dev.json"
    path.parent.mkdir()
    path.write_text('{"version": "1.0", "data": {"intrasentence": [{"id": "a", "target": "x"')
    with pytest.raises(BiasDataError) as caught:
        load_stereoset(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not valid JSON (") and "line 1 column" in message
    assert "expected the authors' nested StereoSet JSON file" in message and "JSONL" not in message


def test_data_folder_that_is_a_file(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("x")
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(not_a_folder))
    with pytest.raises(BiasDataError) as caught:
        benchmark_file("crows_pairs")
    assert f"{str(not_a_folder)!r} (taken from $LM_EVAL_BIAS_DATA_DIR) is not a folder but a file" in str(caught.value)
    assert "not found" not in str(caught.value)


# ---------------------------------------------------------------------- options, metadata


def test_model_args_checks():
    from lm_eval_bias.model_wrappers import model_args

    with pytest.raises(BiasOptionError, match=r"^--model_args: bits is given 2 times \(bits=4, bits=8\); give each"):
        model_args.check_repeated(model_args.split_items("pretrained=x,quantization=rtn,bits=4,bits=8"))
    model_args.check_repeated(model_args.split_items("pretrained=x,layers=[1,2],calibration='a,b'"))
    with pytest.raises(
        BiasOptionError, match=r"dtype=float8 is not a dtype a model loads in; use one of auto, float32"
    ):
        model_args.check_dtype("float8")
    model_args.check_dtype("bfloat16")
    with pytest.raises(BiasOptionError, match=r"^--model_args: pretrained=/nowhere/model: no such folder"):
        model_args.check_pretrained("/nowhere/model")
    model_args.check_pretrained("EleutherAI/pythia-70m")  # a Hub id is not checked here


def test_method_option_misspelt_lists_the_methods_options():
    from lm_eval_bias.model_wrappers import model_args
    from lm_eval_bias.model_wrappers.quantizers.auto import quantizer_class, quantizer_options

    rtn = quantizer_class("rtn").config_class.option_names()
    with pytest.raises(BiasOptionError) as caught:
        model_args.check_near_misses("rtn", {"bitz": 4, "dtype": "float32"}, rtn, quantizer_options())
    assert str(caught.value) == (
        "quantization=rtn does not take bitz (did you mean 'bits'?); its options: bits, group_size, symmetric, "
        "quantize_lm_head."
    )
    with pytest.raises(BiasOptionError, match=r"^--model_args: unknown option dtpye \(did you mean 'dtype'\?\)"):
        model_args.check_near_misses("none", {"dtpye": "float32"}, (), quantizer_options())
    model_args.check_near_misses("none", {"attn_implementation": "eager"}, (), quantizer_options())  # from_pretrained's


def test_unknown_metadata_keys():
    from lm_eval_bias.protocol import check_metadata_keys

    with pytest.raises(BiasOptionError) as caught:
        check_metadata_keys({"protocl"}, ["crows_pairs_bias", "hellaswag"])
    assert str(caught.value).startswith("--metadata: unknown key 'protocl' (did you mean 'protocol'?); the keys")
    with pytest.raises(BiasOptionError, match="unknown key 'max_seq_lengths'"):
        check_metadata_keys({"max_seq_lengths"}, ["crows_pairs_bias", "stereoset_bias"])
    check_metadata_keys({"max_seq_lengths"}, ["crows_pairs_bias", "ruler"])  # another task may read it
    check_metadata_keys({"protocol", "sentence_score"}, ["crows_pairs_bias"])


def test_input_longer_than_the_context():
    from types import SimpleNamespace

    from lm_eval_bias.model_wrappers.input_length import InputLengthCheck

    request = SimpleNamespace(task_name="crows_pairs_bias_gender", doc_id=3, doc={"pair_id": 17}, args=("", "x"))
    with pytest.raises(BiasInputTooLongError) as caught:
        InputLengthCheck().check([10, 30001], [None, request], 2048)
    assert str(caught.value).startswith(
        "task crows_pairs_bias_gender, document 3 (pair_id 17): the input is 30001 tokens, longer than the model's "
        "context of 2048 tokens"
    )
    assert "long_inputs=truncate" in str(caught.value)
    lenient = InputLengthCheck("truncate")
    lenient.check([10, 30001, 2049, 2050], [None] * 4, 2048)
    assert lenient.record() == {"long_inputs": {"rule": "truncate", "truncated": 2}}
    assert InputLengthCheck().record() == {}


def test_study_without_compressions(tmp_path):
    from lm_eval_bias.study.config import StudyConfigError, expand_study

    with pytest.raises(StudyConfigError, match=r"^compressions: the config lists no compressions"):
        expand_study({"models": ["m"], "compressions": [], "tasks": ["crows_pairs_bias"]}, output_dir=tmp_path)


def test_leaderboard_output_with_an_unknown_extension(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path), "-o", str(tmp_path / "board.xlsx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lm-eval-bias: -o/--output ") and "unknown extension '.xlsx'; use one of .md" in err
    assert err.count("\n") == 1 and not (tmp_path / "board.xlsx").exists()


# ----------------------------------------------------------------------- group metrics


def test_a_failing_pooled_group_metric_fails_the_run():
    from types import SimpleNamespace

    from lm_eval_bias import plugin

    class Group:
        name = "crows_pairs_bias"
        metadata = {"pooled_ratio_metrics": "no_such_module_xyz:TABLE"}

        def aggregate(self, task_metrics):
            return {"stereo_score,none": 50.0}

        def get_all_tasks(self):
            return []

    plugin.on_group(SimpleNamespace(Group=Group))
    with pytest.raises(GroupMetricError) as caught:
        Group().aggregate({})
    assert str(caught.value).startswith(
        "pooled group metrics failed for group 'crows_pairs_bias': ModuleNotFoundError: "
        "No module named 'no_such_module_xyz'"
    )


def test_json_error_message_has_no_traceback_text(tmp_path):
    # the bad-JSON message is one line even for a many-line file
    path = tmp_path / "stereoset" / "test.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"data": {}}, indent=2)[:-3])
    with pytest.raises(BiasDataError) as caught:
        load_stereoset(path)
    assert "\n" not in str(caught.value)


def test_control_characters_in_stereoset_and_seat(tmp_path):
    from lm_eval_bias.data.seat import load_seat_test

    record = {
        "type": "intersentence",
        "target": "chess player",
        "bias_type": "profession",
        "context": "The chess player\x00 sat.",
        "stereotype": "He was nerdy.",
        "anti-stereotype": "He was strong.",
        "unrelated": "Cats fly.",
    }
    flat = tmp_path / "stereoset_dev.jsonl"
    flat.write_text(json.dumps(record) + "\n")
    with pytest.raises(BiasDataError) as caught:
        load_stereoset(flat)
    assert str(caught.value) == (
        f"{flat}: line 1, 'context': control character(s) U+0000 (NUL) in the text; expected plain text"
    )
    roles = {role: {"category": role, "examples": ["a", "b"]} for role in ("targ1", "targ2", "attr1", "attr2")}
    roles["attr2"]["examples"][1] = "b\x1b[31m"
    seat = tmp_path / "sent-weat1.jsonl"
    seat.write_text(json.dumps(roles))
    with pytest.raises(BiasDataError, match=r"attr2.examples\[1\]: control character\(s\) U\+001B in the sentence"):
        load_seat_test(seat)


def test_model_args_key_repeated_across_flags_is_refused():
    import argparse

    from lm_eval._cli.utils import MergeDictAction

    from lm_eval_bias import plugin

    plugin.on_cli_utils(__import__("lm_eval._cli.utils", fromlist=["MergeDictAction"]))  # no-op when hooked
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_args", nargs="+", action=MergeDictAction)
    assert parser.parse_args(["--model_args", "pretrained=x,bits=4"]).model_args == {"pretrained": "x", "bits": 4}
    with pytest.raises(BiasOptionError, match=r"^--model_args: bits is given 2 times \(bits=4, bits=8\)"):
        parser.parse_args(["--model_args", "pretrained=x,bits=4", "--model_args", "bits=8"])
    with pytest.raises(BiasOptionError, match=r"^--model_args: bits is given 2 times \(bits=4, bits=8\)"):
        parser.parse_args(["--model_args", "bits=4", "bits=8"])


def test_control_characters_match_a_per_character_rule():
    from lm_eval_bias.data.text_files import control_characters

    def plain(text):  # the rule written out character by character
        bad = sorted({c for c in text if (ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127})
        return ", ".join(f"U+{ord(c):04X}" + (" (NUL)" if c == "\0" else "") for c in bad)

    for code in range(0x250):
        assert control_characters(f"a{chr(code)}b") == plain(f"a{chr(code)}b"), hex(code)
    text = "x\0y\x7f\t\n\r\x1b\0"
    assert control_characters(text) == plain(text) == "U+0000 (NUL), U+001B, U+007F"
