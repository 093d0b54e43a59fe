# Sourced by the other scripts: where cargo builds, and a guard for the shared build folder.

# One persistent target folder outside the checkout, so a fresh clone (and CI) reuses the
# compiled dependencies instead of rebuilding Burn for a quarter of an hour.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/oneshot/target}"
export PATH="$HOME/.cargo/bin:$PATH"

# Cargo names this crate's artifacts the same whichever folder it is checked out in, and judges
# their freshness by the modification times of the current checkout's sources: a checkout whose
# files are older than a build from another folder could reuse that build. When the folder
# changes, make the workspace's own inputs newer than any artifact, so only its crates rebuild.
# Every member counts: cargo records their sources by paths relative to the workspace, so a
# member left out here (crates/ was, until 2026-12-07) silently keeps another checkout's build.
# (Not `cargo clean -p`: crates.io has an unrelated `oneshot` crate deep in Burn's tree, and
# cleaning ours also dropped its artifacts and rebuilt half of Burn.)
claim_target_dir() {
  local marker="$CARGO_TARGET_DIR/.oneshot-checkout${1:+-$1}"
  mkdir -p "$CARGO_TARGET_DIR"
  if [ "$(cat "$marker" 2>/dev/null)" != "$PWD" ]; then
    find Cargo.toml src crates tests weights -type f -exec touch {} +
    echo "$PWD" > "$marker"
  fi
}
