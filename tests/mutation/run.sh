#!/usr/bin/env bash
# Mutation testing of one module with mutmut (pip install mutmut; not part of CI: it is slow), on a random sample
# of its mutants (of the lines its tests cover), with only the tests given.
#
#   tests/mutation/run.sh MODULE SAMPLE SEED TEST_PATH...
#   tests/mutation/run.sh spectralgpt_hf/inference/tiling.py 40 0 tests/inference/test_tiling.py
#
# The repository is copied to a scratch folder (mutmut writes mutants/ beside setup.cfg there), so the working
# tree is untouched. SAMPLE 0 runs every mutant. Prints a summary line and the mutants that survived.
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
} >setup.cfg
rm -f pyproject.toml.mutmut
# Generates the mutants and the coverage map (the filter matches nothing: mutmut itself runs no mutant).
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
# The tests must pass unmutated (a mutant name of no module runs the original code), or no result would mean anything.
if ! (cd mutants && MUTANT_UNDER_TEST=none.none python -m pytest -p no:cacheprovider -q -x $* >../baseline.log 2>&1); then
  echo "The tests fail without a mutant (see $work/baseline.log); fix that first." >&2
  exit 1
fi
# Each mutant runs in a fresh pytest process (mutmut's own runner forks its parent, where a torch or GDAL thread
# pool left from the coverage run can deadlock a child and pass for a timeout). Two at a time, 5 min each at most.
mkdir -p results
printf '%s\n' $names | xargs -P "${MUTATION_JOBS:-2}" -I{} sh -c '
  cd mutants && MUTANT_UNDER_TEST="$1" timeout 300 python -m pytest -p no:cacheprovider -q -x '"$*"' >/dev/null 2>&1
  echo $? >"../results/$1"' _ {}
python - $names <<'PY'
import sys
from pathlib import Path
# pytest's exit codes: 1 a test failed, 2 collection failed (the mutant broke an import or a module-level call; the
# unmutated tests collected): both killed. 0 survived; 124 the 5 min limit (timeout, not counted killed).
codes = {name: int(Path("results", name).read_text()) for name in sys.argv[1:]}
killed = [n for n, c in codes.items() if c in (1, 2)]
survived = [n for n, c in codes.items() if c == 0]
other = [n for n, c in codes.items() if c not in (0, 1, 2)]
print(f"SUMMARY {len(killed)}/{len(codes)} killed ({100 * len(killed) / max(len(codes), 1):.0f} %), "
      f"{len(survived)} survived, {len(other)} timed out or errored")
for name in survived:
    print("SURVIVED", name)
for name in other:
    print("OTHER", codes[name], name)
PY
echo "work folder: $work (mutmut show NAME there for a mutant's diff)"
