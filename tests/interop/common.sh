# Shared settings for the interop mail world. Sourced by up.sh, down.sh, run.sh.
#
# The world lives in a network namespace ($SC_NS, only loopback) and a scratch
# folder ($WORLD, from mktemp -d). A pointer file records which scratch folder
# belongs to which namespace, so down.sh can find it on its own.

SC_NS=${SC_NS:-scworld}
SC_STATE_DIR=/run/sendercheck-interop
SC_POINTER=$SC_STATE_DIR/$SC_NS.world
# Exim is unpacked from its .deb (it conflicts with Postfix), cached here
SC_EXIM_CACHE=${SC_EXIM_CACHE:-/var/cache/sendercheck-interop}
SC_EXIM_BIN=$SC_EXIM_CACHE/exim/usr/sbin/exim4
# postgrey delay in seconds; sendercheck gets --greylist-wait a bit longer
SC_GREY_DELAY=${SC_GREY_DELAY:-5}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[interop] %s\n' "$*" >&2; }
die() { printf '[interop] error: %s\n' "$*" >&2; exit 1; }

# run a command inside the namespace
nsx() { ip netns exec "$SC_NS" "$@"; }

world_dir() { [ -f "$SC_POINTER" ] && cat "$SC_POINTER"; }
