#!/usr/bin/env bash
# The nightly rustc, except that `rustc -vV` does not say "nightly".
# dfdx 0.13's build script turns on its `nightly` feature (generic_const_exprs
# code that no longer compiles) when `$RUSTC -vV` says nightly; cargo fuzz
# needs nightly only for its instrumentation flags, not for dfdx's features.
# Used as RUSTC by fuzz/run.sh.
real="$(rustup which --toolchain nightly rustc)"
if [ "$*" = "-vV" ]; then
  "$real" -vV | sed 's/-nightly//; s/nightly/quiet/'
else
  exec "$real" "$@"
fi
