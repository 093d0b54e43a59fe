# Sourced: a Python environment with the native peers (requirements.txt), created or updated
# once in a persistent folder beside the build cache; sets $PEERS_PYTHON.
peers_env="${ONESHOT_PYENV:-$HOME/.cache/oneshot/pyenv}"
peers_requirements="$(dirname "${BASH_SOURCE[0]}")/requirements.txt"
if ! cmp -s "$peers_requirements" "$peers_env/requirements.txt"; then
  echo "installing the benchmark peers into $peers_env (onnx, onnxruntime, torch: a minute or two, once)"
  [ -x "$peers_env/bin/python" ] || python3 -m venv "$peers_env"
  "$peers_env/bin/pip" install -q --disable-pip-version-check -r "$peers_requirements"
  cp "$peers_requirements" "$peers_env/requirements.txt"
fi
export PEERS_PYTHON="$peers_env/bin/python"
