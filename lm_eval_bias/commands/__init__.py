"""One module per `lm-eval-bias` subcommand."""
