#!/usr/bin/env bash
# Sets up the peers that speed ratios are measured against, each in its own venv outside the repo
# (they need other versions of our dependencies). Usage: scripts/setup_peers.sh [rejax] [sb3]
#   rejax: rejax 0.1.3 (pure JAX; needs the pre-1.0 gymnax step API) in ~/.cache/rejax-peer,
#          run by scripts/rejax_peer.py; scripts/bench.py --peer ~/.cache/rejax-peer/bin/python
#   sb3:   sb3-contrib (PyTorch CPU, single-threaded TRPO) with Gymnasium's classic control in
#          ~/.cache/sb3-peer, run by scripts/sb3_trpo.py; scripts/parallel_trpo.py --peer ~/.cache/sb3-peer/bin/python
set -euo pipefail
PEERS=${PEERS_DIR:-$HOME/.cache}
for peer in "${@:-rejax}"; do
  case "$peer" in
    rejax)
      python3 -m venv "$PEERS/rejax-peer"
      "$PEERS/rejax-peer/bin/pip" install -q "rejax==0.1.3" "gymnax==0.0.9" six
      "$PEERS/rejax-peer/bin/python" -c "import rejax; print('rejax peer:', '$PEERS/rejax-peer/bin/python')" ;;
    sb3)
      python3 -m venv "$PEERS/sb3-peer"
      # torch 2.13.0 first: the CPU build this machine keeps on disk (a bare "torch" pulls CUDA)
      "$PEERS/sb3-peer/bin/pip" install -q "torch==2.13.0"
      "$PEERS/sb3-peer/bin/pip" install -q "sb3-contrib==2.*" "gymnasium[classic-control]==1.*"
      "$PEERS/sb3-peer/bin/python" -c "import sb3_contrib; print('sb3 peer:', '$PEERS/sb3-peer/bin/python', sb3_contrib.__version__)" ;;
    *) echo "setup_peers.sh: unknown peer '$peer' (choose from: rejax, sb3)" >&2; exit 2 ;;
  esac
done
