#!/usr/bin/env bash
# Smoke test of the built desktop bundle (Linux): no Python from outside, no display, no model files.
#
#   installer/smoke_test.sh [dist/xiaoer]
#
# A fresh data dir (XIAOER_HOME) and an empty models dir (XIAOER_MODELS_DIR) make the bundle do
# what it does on a shop's first start: assemble and verify the embedded model from the part
# packages inside the bundle. Then:
#   1. `xiaoer --version`                   the frozen program starts;
#   2. `xiaoer draft "可以选择快递吗？"`     assembles + verifies the model, drafts in the terminal;
#   3. `xiaoer -m app evolve --help`         the way the window starts its evolution child works;
#   4. `xiaoer gui --smoke`                  the real window offscreen (the store created and
#                                            migrated): one message, a draft from the model worker,
#                                            scored by the bundled USE + e5 scorers; exit 0.
# Exit 0 only when all pass. Not part of `make test` (see README, "Install").
set -euo pipefail

BUNDLE=${1:-dist/xiaoer}
EXE="$BUNDLE/xiaoer"
[[ -x "$EXE" ]] || { echo "no bundle at $BUNDLE: run 'make installer' first" >&2; exit 2; }

TMP=$(mktemp -d -t xiaoer-smoke-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export XIAOER_HOME="$TMP/home" XIAOER_MODELS_DIR="$TMP/models" QT_QPA_PLATFORM=offscreen
mkdir -p "$XIAOER_MODELS_DIR"
# Whatever Python the caller has must not leak into the bundle.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
export PATH=/usr/bin:/bin

step() { printf '\n== %s\n' "$*" >&2; }
start=$SECONDS

step "version"
"$EXE" --version

step "draft (first start: assembles and verifies the embedded model from the bundled parts)"
t=$SECONDS
reply=$("$EXE" draft --max-tokens 48 "可以选择快递吗？")
echo "reply: $reply"
[[ -n "${reply//[[:space:]]/}" ]] || { echo "FAIL: empty draft" >&2; exit 1; }
[[ -f "$XIAOER_MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf.verified.json" ]] \
    || { echo "FAIL: the model was not assembled and verified into $XIAOER_MODELS_DIR" >&2; exit 1; }
echo "draft: $((SECONDS - t)) s" >&2

step "the evolution child's command line (-m app evolve)"
"$EXE" -m app evolve --help >/dev/null

step "window offscreen: first-start assembly behind the progress dialog, one draft, scored"
t=$SECONDS
export XIAOER_MODELS_DIR="$TMP/models-gui"  # empty again: the window assembles the model itself
mkdir -p "$XIAOER_MODELS_DIR"
"$EXE" gui --smoke "可以选择快递吗？"
[[ -f "$XIAOER_MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf.verified.json" ]] \
    || { echo "FAIL: the window did not assemble and verify the model" >&2; exit 1; }
[[ -f "$XIAOER_HOME/xiaoer.db" ]] || { echo "FAIL: no database in $XIAOER_HOME" >&2; exit 1; }
echo "gui --smoke: $((SECONDS - t)) s" >&2

echo "smoke test passed in $((SECONDS - start)) s" >&2
