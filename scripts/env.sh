# Sourced by the other scripts: where cargo builds, and a guard for the shared build folder.

# One persistent target folder outside the checkout, so a fresh clone (and CI) reuses the
# compiled dependencies instead of rebuilding Burn for a quarter of an hour.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/oneshot/target}"
export PATH="$HOME/.cargo/bin:$PATH"

# Cargo names this crate's artifacts the same whichever folder it is checked out in, and its
# freshness check then looks at the *other* checkout's sources: a clone could silently reuse a
# binary built from different code. When the folder changes, drop this crate's artifacts (only
# ours; the dependencies stay).
claim_target_dir() {
  local marker="$CARGO_TARGET_DIR/.oneshot-checkout${1:+-$1}"
  mkdir -p "$CARGO_TARGET_DIR"
  if [ "$(cat "$marker" 2>/dev/null)" != "$PWD" ]; then
    # Named with its version: crates.io has an unrelated `oneshot` crate deep in Burn's tree.
    local version
    version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
    cargo clean --release -p "oneshot@$version" ${1:+--target "$1"} >/dev/null 2>&1 || true
    echo "$PWD" > "$marker"
  fi
}
