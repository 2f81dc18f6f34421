#!/usr/bin/env bash
# Mutation testing of one module with mutmut (pip install mutmut; not part of CI: it is slow), on a random sample
# of its mutants (of the lines its tests cover), with only the tests given.
#
#   tests/mutation/run.sh MODULE SAMPLE SEED TEST_PATH...
#   tests/mutation/run.sh spectralgpt_hf/inference/tiling.py 40 0 tests/inference/test_tiling.py
#
# The repository is copied to a scratch folder (mutmut writes mutants/ beside setup.cfg there), so the working
# tree is untouched. SAMPLE 0 runs every mutant. Prints mutmut's results for the sample and a summary line.
set -euo pipefail
module=$1 sample=$2 seed=$3
shift 3
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${MUTATION_WORK:-$(mktemp -d /tmp/mutation.XXXXXX)}
mkdir -p "$work"
(cd "$root" && tar --exclude=.git --exclude=.cache --exclude=__pycache__ --exclude=mutants --exclude=.venv -cf - .) \
  | (cd "$work" && tar xf -)
cd "$work"
{
  echo "[mutmut]"
  echo "source_paths=spectralgpt_hf"
  echo "only_mutate=$module"
  echo "pytest_add_cli_args_test_selection="
  for test in "$@"; do echo "    $test"; done
  echo "pytest_add_cli_args=-p no:cacheprovider -q -x"
  echo "mutate_only_covered_lines=true"
  echo "max_children=1"
} >setup.cfg
rm -f pyproject.toml.mutmut
# Generates the mutants and the coverage map (the filter matches nothing, so no mutant runs yet).
mutmut run "no-such-mutant*" >generate.log 2>&1 || true
meta=mutants/${module}.meta
names=$(python - "$meta" "$sample" "$seed" <<'PY'
import json, random, sys
names = sorted(json.load(open(sys.argv[1]))["exit_code_by_key"])
sample, seed = int(sys.argv[2]), int(sys.argv[3])
if sample and sample < len(names):
    names = sorted(random.Random(seed).sample(names, sample))
print(" ".join(names))
print(f"{len(json.load(open(sys.argv[1]))['exit_code_by_key'])} mutants in all", file=sys.stderr)
PY
)
mutmut run $names >run.log 2>&1 || true
python - "$meta" $names <<'PY'
import json, sys
codes = json.load(open(sys.argv[1]))["exit_code_by_key"]
names = sys.argv[2:]
# mutmut's exit codes: 1 killed (a test failed), 0 survived, 33 no tests, 36 / -24 / 152 timeout (counted killed)
status = {name: codes.get(name) for name in names}
killed = [n for n, c in status.items() if c not in (0, 33, 5, None)]
survived = [n for n, c in status.items() if c == 0]
untested = [n for n, c in status.items() if c in (33, 5, None)]
print(f"SUMMARY {len(killed)}/{len(names)} killed ({100 * len(killed) / max(len(names), 1):.0f} %), "
      f"{len(survived)} survived, {len(untested)} not run / no tests")
for name in survived:
    print("SURVIVED", name)
for name in untested:
    print("NO-TESTS", name)
PY
echo "work folder: $work (mutmut show NAME there for a mutant's diff)"
