"""`lm-eval-bias methods`: the compression methods quantized_hf knows, with their options."""


def run(_args) -> int:
    from lm_eval_bias.model_wrappers.quantizers.auto import QUANTIZERS

    for name, cls in QUANTIZERS.items():
        options = ", ".join(cls.options) or "-"
        devices = ", ".join(cls.devices) if cls.devices else "any"
        print(f"{name:<18} devices: {devices:<10} options: {options}")
    return 0


def add_parser(subparsers) -> None:
    subparsers.add_parser("methods", help="list compression methods and their options").set_defaults(run=run)
