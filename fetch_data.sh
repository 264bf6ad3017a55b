#!/usr/bin/env bash
# Fetch the data sets into data/ (relative to the current directory) and verify them.
#
# Omniglot: images_background.zip and images_evaluation.zip are downloaded from
# $OMNIGLOT_URL (default: the official repository; a mirror or a file:// directory works too),
# checked (whole zip archives; failed downloads are retried), merged into data/omniglot and verified (50 alphabets, 1,623 characters, 32,460 PNGs).
# Everything is assembled in a temporary folder next to data/omniglot and moved into place in
# one step, so an interrupted or failed run leaves nothing half-written and a rerun starts clean.
#
# Mini-ImageNet cannot be downloaded (its original source is gone and the images may not be
# redistributed). Point MINIIMAGENET_SOURCE (or --miniimagenet PATH) at a copy you have: a
# Ravi-format folder (images + train/val/test.csv), a folder of mini-imagenet-cache-*.pkl files,
# or a {train,val,test}/<wnid>/ tree. data/miniimagenet is built from it and verified (see
# supervised_reptile/build_miniimagenet.py), again all or nothing.
set -euo pipefail

if [ "${1:-}" = "--miniimagenet" ]; then
  [ -n "${2:-}" ] || { echo "fetch_data.sh: --miniimagenet needs a folder" >&2; exit 1; }
  MINIIMAGENET_SOURCE="$2"
fi
MINIIMAGENET_SOURCE="${MINIIMAGENET_SOURCE:-}"

OMNIGLOT_URL="${OMNIGLOT_URL:-https://github.com/brendenlake/omniglot/raw/master/python}"
DATA_DIR="${DATA_DIR:-data}"
PYTHON="${PYTHON:-python3}"
RETRY_DELAY="${RETRY_DELAY:-2}"  # seconds, growing with each attempt

die() { echo "fetch_data.sh: $*" >&2; exit 1; }

# verify_omniglot DIR: exit status 0 when DIR holds the complete merged Omniglot.
verify_omniglot() {
  "$PYTHON" - "$1" <<'EOF'
import os, sys
root = sys.argv[1]
alphabets = [a for a in os.listdir(root) if os.path.isdir(os.path.join(root, a))]
characters = [os.path.join(root, a, c) for a in alphabets for c in os.listdir(os.path.join(root, a))
              if c.startswith('character')]
pngs = sum(1 for c in characters for f in os.listdir(c) if f.endswith('.png'))
if (len(alphabets), len(characters), pngs) != (50, 1623, 32460):
    sys.exit('%s holds %d alphabets, %d characters and %d PNGs, not 50, 1623 and 32460'
             % (root, len(alphabets), len(characters), pngs))
EOF
}

# fetch_zip NAME DEST: download NAME.zip, retrying, and check that it is a whole zip archive.
fetch_zip() {
  local url="$OMNIGLOT_URL/$1.zip" attempt
  for attempt in 1 2 3; do
    if curl -fsSL --retry 2 -o "$2" "$url" && "$PYTHON" -m zipfile -t "$2" >/dev/null 2>&1; then
      return 0
    fi
    echo "  attempt $attempt of 3 failed for $url" >&2
    sleep $((attempt * RETRY_DELAY))
  done
  die "could not download a valid $1.zip from $url (HTTP error, truncated file or not a zip); check the network or set OMNIGLOT_URL to a mirror"
}

fetch_omniglot() {
  local target="$DATA_DIR/omniglot" work name
  if [ -e "$target" ]; then
    verify_omniglot "$target" || die "$target exists but is incomplete; remove it and run this script again"
    echo "Omniglot: $target is present and complete."
    return 0
  fi
  mkdir -p "$DATA_DIR"
  rm -rf "$DATA_DIR"/.omniglot.*  # left by a run that was killed outright
  work=$(mktemp -d "$DATA_DIR/.omniglot.XXXXXX")
  trap "rm -rf '$work'" EXIT
  trap 'exit 1' INT TERM
  mkdir "$work/omniglot"
  for name in images_background images_evaluation; do
    echo "Fetching omniglot/$name ..."
    fetch_zip "$name" "$work/$name.zip"
    echo "Extracting omniglot/$name ..."
    "$PYTHON" -m zipfile -e "$work/$name.zip" "$work/" || die "could not extract $name.zip"
    [ -d "$work/$name" ] || die "$name.zip does not hold a $name/ folder"
    mv "$work/$name"/* "$work/omniglot/"
    rm -rf "$work/$name" "$work/$name.zip"
  done
  verify_omniglot "$work/omniglot" || die "the downloaded Omniglot is incomplete"
  mv "$work/omniglot" "$target"
  echo "Omniglot: installed in $target (50 alphabets, 1,623 characters, 32,460 images)."
}

build_miniimagenet() {
  local target="$DATA_DIR/miniimagenet"
  local builder=("$PYTHON" -m supervised_reptile.build_miniimagenet)
  export PYTHONPATH="$(cd "$(dirname "$0")" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
  rm -rf "$DATA_DIR"/.miniimagenet.*  # left by a build that was killed outright
  if [ -e "$target" ]; then
    "${builder[@]}" --check "$target" || die "$target is not complete; remove it and build it again"
    echo "Mini-ImageNet: $target is present and complete."
  elif [ -n "$MINIIMAGENET_SOURCE" ]; then
    echo "Building Mini-ImageNet from $MINIIMAGENET_SOURCE ..."
    "${builder[@]}" "$MINIIMAGENET_SOURCE" "$target" || exit 1
    echo "Mini-ImageNet: installed in $target (64/16/20 classes, verified)."
  else
    echo "Mini-ImageNet: not built (it cannot be downloaded); run MINIIMAGENET_SOURCE=<your copy> ./fetch_data.sh, see README.md."
  fi
}

fetch_omniglot
build_miniimagenet
