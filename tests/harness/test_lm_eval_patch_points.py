"""The lm-eval functions the import hook wraps, the ones our wrappers call into, and HFLM's private
methods that QuantizedHFLM overrides keep the signatures they had in the lm-eval version they were
checked against (docs/architecture.md, "What the plugin changes in lm-eval").

A wrapper binds its caller's arguments by name (``include_path``, ``include_defaults``, ``lm``,
``task_dict``, ``task_metrics``); if lm-eval renames or reorders one, the wrapper would quietly
stop doing its job. An HFLM override that no longer matches HFLM's method would stop being called,
or be called with arguments it does not take. This test fails instead, naming the function and both
signatures: check the patch in lm_eval_bias/plugin.py (for HFLM's methods, the override in
model_wrappers/quantized_hf.py) against the new lm-eval, then update EXPECTED and the docs.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

CHECKED_AGAINST = "0.4.13"
P, K, V = "POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY", "VAR_POSITIONAL"

# "module:qualified name" -> [(parameter, kind, repr(default) or None)], and whether the hook wraps it
EXPECTED = {
    "lm_eval.tasks.manager:TaskManager.__init__": (
        [
            ("self", P, None),
            ("verbosity", P, "None"),
            ("include_path", P, "None"),
            ("include_defaults", P, "True"),
            ("metadata", P, "None"),
        ],
        True,
    ),
    "lm_eval.api.group:Group.aggregate": ([("self", P, None), ("task_metrics", P, None)], True),
    # an aggregation carrying a closed-form stderr (lm_eval_bias.metrics.stderr) gets it from here
    "lm_eval.api.metrics:stderr_for_metric": ([("metric", P, None), ("bootstrap_iters", P, None)], True),
    "lm_eval.evaluator:evaluate": (
        [
            ("lm", P, None),
            ("task_dict", P, None),
            ("limit", P, "None"),
            ("samples", P, "None"),
            ("cache_requests", P, "False"),
            ("rewrite_requests_cache", P, "False"),
            ("bootstrap_iters", P, "100000"),
            ("write_out", P, "False"),
            ("log_samples", P, "True"),
            ("system_instruction", P, "None"),
            ("apply_chat_template", P, "False"),
            ("fewshot_as_multiturn", P, "False"),
            ("verbosity", P, "'INFO'"),
            ("confirm_run_unsafe_code", P, "False"),
        ],
        True,
    ),
    # wrapped for the checks before the model loads (docs/errors.md); only these parameters are read
    "lm_eval.evaluator:simple_evaluate": (
        [
            (name, P, default)
            for name, default in [
                ("model", None),
                ("model_args", "None"),
                ("tasks", "None"),
                ("num_fewshot", "None"),
                ("batch_size", "None"),
                ("max_batch_size", "None"),
                ("device", "None"),
                ("use_cache", "None"),
                ("cache_requests", "False"),
                ("rewrite_requests_cache", "False"),
                ("delete_requests_cache", "False"),
                ("limit", "None"),
                ("samples", "None"),
                ("bootstrap_iters", "100000"),
                ("check_integrity", "False"),
                ("write_out", "False"),
                ("log_samples", "True"),
                ("evaluation_tracker", "None"),
                ("system_instruction", "None"),
                ("apply_chat_template", "False"),
                ("fewshot_as_multiturn", "True"),
                ("gen_kwargs", "None"),
                ("task_manager", "None"),
                ("verbosity", "None"),
                ("predict_only", "False"),
                ("random_seed", "0"),
                ("numpy_random_seed", "1234"),
                ("torch_random_seed", "1234"),
                ("fewshot_random_seed", "1234"),
                ("confirm_run_unsafe_code", "False"),
                ("metadata", "None"),
            ]
        ],
        True,
    ),
    "lm_eval._cli.utils:MergeDictAction.__call__": (
        [
            ("self", P, None),
            ("parser", P, None),
            ("namespace", P, None),
            ("values", P, None),
            ("option_string", P, "None"),
        ],
        True,
    ),
    # called by the patches, not wrapped
    "lm_eval.api.group:Group.get_all_tasks": ([("self", P, None), ("recursive", P, "True")], False),
    "lm_eval.api.registry:Registry.register": ([("self", P, None), ("aliases", V, None), ("target", K, "None")], False),
    # what our task classes (lm_eval_bias.task_base, lm_eval_bias.protocol_tasks) override or call
    "lm_eval.api.task:ConfigurableTask.__init__": (
        [
            ("self", P, None),
            ("data_dir", P, "None"),
            ("cache_dir", P, "None"),
            ("download_mode", P, "None"),
            ("config", P, "None"),
        ],
        False,
    ),
    "lm_eval.api.task:ConfigurableTask.construct_requests": (
        [
            ("self", P, None),
            ("doc", P, None),
            ("ctx", P, None),
            ("kwargs", "VAR_KEYWORD", None),
        ],
        False,
    ),
    "lm_eval.api.task:ConfigurableTask.process_results": (
        [("self", P, None), ("doc", P, None), ("results", P, None)],
        False,
    ),
    # HFLM's private methods that QuantizedHFLM (model_wrappers/quantized_hf.py) overrides: it passes
    # backend= and trust_remote_code= on by name, hands _create_model's arguments through to HFLM (whose
    # revision, quantization_config, gguf_file and subfolder reach loading.CheckedLoader), and takes
    # disable_tqdm and override_bs as HFLM's loglikelihood and loglikelihood_rolling pass them
    "lm_eval.models.huggingface:HFLM._get_backend": (
        [("self", P, None), ("config", P, None), ("backend", P, "'default'"), ("trust_remote_code", P, "False")],
        False,
    ),
    "lm_eval.models.huggingface:HFLM._create_model": (
        [
            ("self", P, None),
            ("pretrained", P, None),
            ("revision", P, "'main'"),
            ("dtype", P, "'auto'"),
            ("trust_remote_code", P, "False"),
            ("parallelize", P, "False"),
            ("gpus", P, "None"),
            ("max_memory_per_gpu", P, "None"),
            ("max_cpu_memory", P, "None"),
            ("offload_folder", P, "'./offload'"),
            ("tp_plan", P, "None"),
            ("peft", P, "None"),
            ("delta", P, "None"),
            ("autogptq", P, "False"),
            ("gptqmodel", P, "False"),
            ("gguf_file", P, "None"),
            ("quantization_config", P, "None"),
            ("subfolder", P, "''"),
            ("kwargs", "VAR_KEYWORD", None),
        ],
        False,
    ),
    "lm_eval.models.huggingface:HFLM._loglikelihood_tokens": (
        [("self", P, None), ("requests", P, None), ("disable_tqdm", P, "False"), ("override_bs", P, "None")],
        False,
    ),
    # ...and calls: _encode_request encodes a request with a context as HFLM does (inherited from TemplateLM)
    "lm_eval.models.huggingface:HFLM._encode_pair": (
        [("self", P, None), ("context", P, None), ("continuation", P, None)],
        False,
    ),
}
# HFLM methods QuantizedHFLM overrides: its override must take every argument HFLM's callers may pass
OVERRIDDEN_BY_QUANTIZED_HF = ("_get_backend", "_create_model", "_loglikelihood_tokens")


def _lookup(target: str):
    module, _, qualname = target.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _signature(func) -> list[tuple]:
    # inspect.signature follows __wrapped__, so a wrapped function reports lm-eval's own signature
    return [
        (p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default))
        for p in inspect.signature(func).parameters.values()
    ]


@pytest.fixture(scope="module", autouse=True)
def hooked():
    from lm_eval_bias import _plugin_hook

    _plugin_hook.install()  # no-op when lm_eval_bias.pth already did it


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_patched_lm_eval_function_keeps_its_signature(target):
    import lm_eval

    expected, wrapped = EXPECTED[target]
    func = _lookup(target)
    actual = _signature(func)
    assert actual == expected, (
        f"lm-eval {getattr(lm_eval, '__version__', '?')} changed the signature of {target} (the lm-eval-bias "
        f"plugin was checked against {CHECKED_AGAINST}).\n  expected {expected}\n  found    {actual}\n"
        "Check the patch in lm_eval_bias/plugin.py (for HFLM's methods, model_wrappers/quantized_hf.py), "
        "then update this test and docs/architecture.md."
    )
    assert bool(getattr(func, "_lm_eval_bias_wrapped", False)) == wrapped, (
        f"{target}: the import hook {'did not wrap' if wrapped else 'unexpectedly wraps'} it"
    )


@pytest.mark.parametrize("name", OVERRIDDEN_BY_QUANTIZED_HF)
def test_quantized_hf_overrides_take_what_hflm_takes(name):
    from lm_eval.models.huggingface import HFLM

    from lm_eval_bias.model_wrappers.quantized_hf import QuantizedHFLM

    ours, theirs = getattr(QuantizedHFLM, name), getattr(HFLM, name)
    assert ours is not theirs, f"QuantizedHFLM no longer overrides HFLM.{name}: update OVERRIDDEN_BY_QUANTIZED_HF"
    arguments = {
        p.name: None for p in inspect.signature(theirs).parameters.values() if p.kind.name == P and p.name != "self"
    }
    inspect.signature(ours).bind(None, **arguments)  # by name, as HFLM's callers may pass them
    inspect.signature(ours).bind(None, *arguments.values())  # and by position


def test_every_hooked_module_has_a_listed_patch():
    from lm_eval_bias._plugin_hook import HOOKS

    patched_modules = {target.partition(":")[0] for target, (_, wrapped) in EXPECTED.items() if wrapped}
    assert set(HOOKS) - {"lm_eval.api.registry"} == patched_modules  # the registry gets entries, no wrapper
    assert {callback.partition(":")[0] for callback in HOOKS.values()} == {"lm_eval_bias.plugin"}
