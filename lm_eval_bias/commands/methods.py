"""`lm-eval-bias methods`: the compression methods quantized_hf knows, with their options and defaults."""


def run(_args) -> int:
    from lm_eval_bias.model_wrappers.quantizers.auto import QUANTIZERS

    for name, cls in QUANTIZERS.items():
        options = ", ".join(f"{option}={default}" for option, (default, _) in cls.config_class.option_docs().items())
        devices = ", ".join(cls.devices) if cls.devices else "any"
        print(f"{name:<18} devices: {devices:<10} options: {options or '-'}")
    return 0


def add_parser(subparsers) -> None:
    subparsers.add_parser("methods", help="list compression methods, their options and defaults").set_defaults(run=run)
