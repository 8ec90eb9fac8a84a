#!/usr/bin/env bash
# The generated documents are well-formed: pgbust(1) and pgbust.yaml(5) pass groff's and
# man's warnings, and the bash completion parses and completes `pgbust ch<TAB>` to check.
#   tests/docs/check_docs.sh DOC_DIR   # the build's doc/ (pgbust.1, pgbust.yaml.5, completion)
set -euo pipefail
dir=$1
fail=0
for page in "$dir/pgbust.1" "$dir/pgbust.yaml.5"; do
  out=$(groff -man -ww -z "$page" 2>&1) || true
  if [ -n "$out" ]; then echo "groff -man -ww: $page:" >&2; echo "$out" >&2; fail=1; fi
  out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || true
  if [ -n "$out" ]; then echo "man --warnings: $page:" >&2; echo "$out" >&2; fail=1; fi
  grep -q '^\.SH NAME' "$page" || { echo "$page: no NAME section" >&2; fail=1; }
done
comp="$dir/pgbust.bash-completion"
bash -n "$comp" || fail=1
complete() {  # $@: the words; completes the last one
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1));
           _pgbust; echo "${COMPREPLY[*]}"' _ "$comp" "$@"
}
expect() {  # expected, words...
  local want=$1 got
  shift
  got=$(complete "$@")
  if [ "$got" != "$want" ]; then echo "completing '$*': got '$got', expected '$want'" >&2; fail=1; fi
}
expect check pgbust ch
expect "setup status" pgbust s
expect "--db" pgbust check --d
expect "insert" pgbust explain --op in
expect "warn" pgbust run --log-level wa
expect "--config" pgbust --conf        # no command: run's options
expect "" pgbust check --config ''     # a file name: bash's default completion
exit $fail
