#!/usr/bin/env bash
# lm-eval's own offline tests, run once with the lm-eval-bias plugin active and once without it
# (LM_EVAL_BIAS_DISABLE_HOOK=1): the plugin only adds to lm-eval, so every test id must have the
# same outcome in both runs. Prints both summaries and every test whose outcome differs; exit 1
# if any does. See docs/architecture.md, "lm-eval's own tests with and without the plugin".
#
#   bash benchmarks/lm_eval_suite_compare.sh                  # the default offline selection
#   TEST_FILES="test_task_manager.py test_group.py" bash benchmarks/lm_eval_suite_compare.sh
#   SDIST=path/to/lm_eval-X.tar.gz WORK=some/dir bash benchmarks/lm_eval_suite_compare.sh
#
# Needs PyPI once (pip download of the installed lm-eval's sdist) unless SDIST is given;
# the tests themselves run with HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1.
set -euo pipefail

PYTHON=${PYTHON:-python}
WORK=${WORK:-$(mktemp -d -t lm_eval_suite.XXXXXX)}
TIMEOUT=${TIMEOUT:-1800}
# Files of lm-eval's tests/ that need neither a model download nor a dataset download.
TEST_FILES=${TEST_FILES:-"test_registry.py test_task_manager.py test_group.py test_aggregation_pipeline.py \
test_evaluator_utils.py test_cli_subcommands.py test_metrics.py test_filters.py test_utils.py \
test_serialization.py test_misc.py test_samplers.py test_janitor.py test_prompt.py"}

VERSION=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('lm-eval'))")
mkdir -p "$WORK"
if [ -z "${SDIST:-}" ]; then
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "lm-eval==$VERSION" -d "$WORK/sdist"
    SDIST="$WORK/sdist/lm_eval-$VERSION.tar.gz"
fi
tar xzf "$SDIST" -C "$WORK"
# Only the tests travel, so that `import lm_eval` is the installed package, not the sdist's source.
rm -rf "$WORK/suite" && mkdir -p "$WORK/suite" && cp -r "$WORK/lm_eval-$VERSION/tests" "$WORK/suite/tests"
cd "$WORK/suite"

files=()
for f in $TEST_FILES; do [ -f "tests/$f" ] && files+=("tests/$f"); done

run() {  # run NAME [ENV=VALUE ...]
    local name=$1; shift
    env HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false "$@" "$PYTHON" -c \
        "import sys; import lm_eval_bias._plugin_hook as h; print('$name: hook active =', any(getattr(f, h._MARK, False) for f in sys.meta_path))"
    env HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false "$@" timeout "$TIMEOUT" \
        "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" --junitxml="$WORK/$name.xml" "${files[@]}" \
        > "$WORK/$name.log" 2>&1 || true
    echo "$name: $(tail -n 1 "$WORK/$name.log")"
}

echo "lm-eval $VERSION, $(( ${#files[@]} )) test files, work folder $WORK"
run with_plugin
run without_plugin LM_EVAL_BIAS_DISABLE_HOOK=1

"$PYTHON" - "$WORK/with_plugin.xml" "$WORK/without_plugin.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET


def outcomes(path):
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        out[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return out


with_plugin, without = outcomes(sys.argv[1]), outcomes(sys.argv[2])
differ = sorted(t for t in with_plugin.keys() | without.keys() if with_plugin.get(t) != without.get(t))
for name, result in (("with plugin", with_plugin), ("without plugin", without)):
    counts = {}
    for outcome in result.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    print(f"{name}: {len(result)} tests, {dict(sorted(counts.items()))}")
for test in differ:
    print(f"DIFFERS {test}: with plugin {with_plugin.get(test, 'absent')}, without {without.get(test, 'absent')}")
print("identical outcomes per test id" if not differ else f"{len(differ)} test(s) differ")
sys.exit(1 if differ else 0)
EOF
