"""`lm-eval-bias methods`: the compression methods quantized_hf knows, with their options and defaults."""


def run(_args) -> int:
    from lm_eval_bias.model_wrappers.quantizers.auto import QUANTIZERS

    for name, cls in QUANTIZERS.items():
        # the defaults as a run gets them (a config fills some in from others: pruning's sparsity is 0.5
        # when no structure is given)
        defaults = cls.config_class.from_options({}, method=name).to_dict()
        options = ", ".join(f"{option}={default}" for option, default in defaults.items())
        devices = ", ".join(cls.devices) if cls.devices else "any"
        print(f"{name:<18} devices: {devices:<10} options: {options or '-'}")
    return 0


def add_parser(subparsers) -> None:
    subparsers.add_parser("methods", help="list compression methods, their options and defaults").set_defaults(run=run)
