#!/usr/bin/env bash
# Builds the Dockerfile from a clean copy of the checkout and runs the image the way
# the README tells a Docker user to, checking what they rely on: non-root uid 10001,
# HEALTHCHECK healthy, `admin user add` through `exec`, login and validate from the
# host through the published port, a read-only root filesystem, data kept on the
# volume across containers, `stop` exiting 0 within its grace period, and the agent
# recipe working in a container.
#
# No Docker engine runs on CI machines and no image can be pulled, so this uses
# Debian's podman (rootful, runtime runc) on the same Dockerfile, and makes the two
# base images it names from a debootstrap'ed bookworm:
#   - docker.io/library/debian:bookworm-slim (unless a real one is present);
#   - a builder with this machine's Rust toolchain, passed as --build-arg RUST_IMAGE
#     (the Dockerfile's default stays the official rust:1-bookworm).
# Both are kept in podman's image store, so later runs on the machine skip this.
# The stand-ins (never the project's image) carry the host's locally added CA
# certificates, since crates may be fetched through a proxy the host trusts.
#
# Needs root, podman, runc and debootstrap (.ci/run installs them).
# Environment: APPLIANCE_DOCKER_KEEP=1 keeps containers and volumes for a look after.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

IMAGE=localhost/appliance:ci
SLIM=docker.io/library/debian:bookworm-slim
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STATE=${APPLIANCE_DOCKER_STATE:-/var/tmp/appliance-docker}
RUN_ID=appliance-ci-$$
mkdir -p "$STATE"

say() { printf '%s\n' "== docker: $*"; }
fail() {
  printf '%s\n' "FAIL docker: $*" >&2
  exit 1
}

for tool in podman runc slirp4netns debootstrap curl git; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (.ci/run installs it)"
done
[ "$(id -u)" = 0 ] || fail "run as root (rootful podman, debootstrap)"

# runc, and resource limits no higher than this sandbox lets a process set (podman's
# defaults ask for more; crun cannot set rlimits here at all).
hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
hard_nproc=$(ulimit -Hu)
{ [ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 32768 ]; } && hard_nproc=32768
cat >"$STATE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$hard_nofile:$hard_nofile", "nproc=$hard_nproc:$hard_nproc"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$STATE/containers.conf
# No bridge networking without iptables here: slirp4netns gives each container its own
# network namespace and publishes ports like Docker's default bridge does.
NET=(--network slirp4netns)

# ---------------------------------------------------------------- base images
rustc_version=$(rustc --version | awk '{print $2}')
BUILDER=localhost/appliance-ci/rust:$rustc_version-bookworm

bootstrap() { # DIR: a minimal bookworm carrying the host's local CA certificates
  case "$1" in
  "$STATE"/?*) ;;
  *) fail "refusing to bootstrap into '$1' (outside $STATE)" ;;
  esac
  rm -rf "$1"
  debootstrap --variant=minbase bookworm "$1" "$MIRROR" >"$STATE/debootstrap.log" 2>&1 ||
    fail "debootstrap failed, see $STATE/debootstrap.log"
  mkdir -p "$1/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates/. "$1/usr/local/share/ca-certificates/"
  # Slim like the official image: no documentation, manuals or translations, now or
  # from later installs, so the image size measured here is close to the real one.
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/groff/*' \
    'path-exclude /usr/share/info/*' 'path-exclude /usr/share/lintian/*' \
    'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
    >"$1/etc/dpkg/dpkg.cfg.d/docker"
  # …and apt keeps no package caches or translations in a layer, as there.
  printf '%s\n' \
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' \
    >"$1/etc/apt/apt.conf.d/docker-clean"
  echo 'Acquire::Languages "none";' >"$1/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Acquire::GzipIndexes "true";' >"$1/etc/apt/apt.conf.d/docker-gzip-indexes"
  (
    cd "$1" || exit 1
    find usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete
    find usr/share/man usr/share/info usr/share/locale -mindepth 1 -maxdepth 1 \
      ! -name locale.alias -exec rm -rf {} +
    rm -f var/cache/apt/archives/*.deb var/cache/apt/*.bin
    find var/lib/apt/lists -maxdepth 1 -type f -delete
  )
}

make_bases() {
  local rootfs=$STATE/rootfs
  if ! podman image exists "$SLIM"; then
    say "making $SLIM from debootstrap (once per machine)"
    bootstrap "$rootfs"
    tar -C "$rootfs" -c . | podman import -q --change 'CMD ["bash"]' - "$SLIM" >/dev/null
  fi
  if ! podman image exists "$BUILDER"; then
    say "making $BUILDER with this machine's Rust $rustc_version (once per toolchain)"
    [ -d "$rootfs/usr" ] || bootstrap "$rootfs"
    chroot "$rootfs" sh -c 'apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        ca-certificates gcc libc6-dev >/dev/null 2>&1 &&
      apt-get clean && rm -rf /var/lib/apt/lists/*' ||
      fail "could not install the C toolchain into the builder"
    # The host's trust store as it is (the proxy's CA included), like the host sees it.
    cp -a /etc/ssl/certs/. "$rootfs/etc/ssl/certs/"
    # rustc finds its libraries relative to itself: bin/, lib/ and libexec/ under
    # /usr/local are a whole toolchain (the docs are left out).
    local sysroot
    sysroot=$(rustc --print sysroot)
    cp -a "$sysroot/bin" "$sysroot/lib" "$sysroot/libexec" "$rootfs/usr/local/"
    tar -C "$rootfs" -c . | podman import -q \
      --change 'ENV CARGO_HOME=/usr/local/cargo' \
      --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "$BUILDER" >/dev/null
  fi
  rm -rf "$rootfs"
}

(
  # One machine, one maker of base images at a time.
  flock 9
  make_bases
) 9>"$STATE/lock"

# ---------------------------------------------------------------- build
# A clean checkout: the files git tracks (and new ones it does not ignore), nothing of
# target/ or a local database.
context=$(mktemp -d)
cleanup() {
  if [ "${APPLIANCE_DOCKER_KEEP:-}" != 1 ]; then
    podman rm -f -t 0 "$RUN_ID-server" "$RUN_ID-server2" "$RUN_ID-agent" >/dev/null 2>&1 || true
    podman volume rm -f "$RUN_ID-data" "$RUN_ID-agent" >/dev/null 2>&1 || true
  fi
  rm -rf "$context"
}
trap cleanup EXIT
git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -c | tar -x -C "$context"

say "building $IMAGE"
start=$(date +%s)
# The build stage is tagged too, so the previous run's stage and image (a few hundred
# MB to a GB of layers each) are dropped once newer ones replace them.
STAGE=localhost/appliance-ci/build-stage:latest
previous=$(podman image inspect -f '{{.Id}}' "$STAGE" "$IMAGE" 2>/dev/null || true)
BUILD_LOG=$STATE/build.log
: >"$BUILD_LOG"
build() { # EXTRA-ARGS…
  podman build --format docker --pull=never --network host \
    --build-arg RUST_IMAGE="$BUILDER" "$@" "$context" >>"$BUILD_LOG" 2>&1 ||
    {
      tail -n 40 "$BUILD_LOG" >&2
      fail "podman build failed (log: $BUILD_LOG)"
    }
}
build --target build -t "$STAGE"
build -t "$IMAGE"
current=$(podman image inspect -f '{{.Id}}' "$STAGE" "$IMAGE")
for id in $previous; do
  case "$current" in
  *"$id"*) ;;
  *) podman rmi "$id" >/dev/null 2>&1 || true ;;
  esac
done
size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
binary=$(podman run --rm --no-healthcheck --network none --entrypoint stat "$IMAGE" \
  -c %s /usr/local/bin/appliance)
say "built in $(($(date +%s) - start)) s; image $((size / 1000000)) MB, binary $((binary / 1000000)) MB"

healthcheck=$(podman image inspect -f '{{.Config.Healthcheck}}' "$IMAGE")
case "$healthcheck" in
*healthcheck*) ;;
*) fail "the image has no HEALTHCHECK (built without --format docker?): $healthcheck" ;;
esac

# ---------------------------------------------------------------- run
# Every server runs as Docker would run it with --read-only (podman adds writable tmpfs
# mounts unless told not to; Docker does not).
# Without systemd, podman logs an error for each health-check timer it cannot make;
# those go to a file (`podman healthcheck run` does the checking here).
PODMAN_LOG=$STATE/podman.log
: >"$PODMAN_LOG"
run_server() { # NAME
  podman run -d --name "$1" --read-only --read-only-tmpfs=false "${NET[@]}" \
    -p 127.0.0.1::8080 -v "$RUN_ID-data:/data" "$IMAGE" >/dev/null 2>>"$PODMAN_LOG" ||
    fail "podman run failed (log: $PODMAN_LOG)"
}

stop() { # NAME: stops it with a 10 s grace period; prints the seconds it took
  local began=$SECONDS
  podman stop -t 10 "$1" >/dev/null 2>>"$PODMAN_LOG"
  echo $((SECONDS - began))
}

wait_healthy() { # NAME
  local i
  for i in $(seq 1 60); do
    if podman healthcheck run "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  podman logs "$1" >&2 || true
  fail "$1 did not become healthy within 30 s"
}

url_of() { # NAME: the host side of the published port
  echo "http://$(podman port "$1" 8080/tcp)"
}

validate() { # URL TOKEN: prints the status line and X-Auth-User of GET /api/validate
  curl -s -o /dev/null -D - "$1/api/validate" -H "Authorization: Bearer $2" |
    tr -d '\r' | grep -iE '^(HTTP/|x-auth-user:)' | tr '\n' ' '
}

server=$RUN_ID-server
say "run (read-only root fs, volume $RUN_ID-data, published port)"
run_server "$server"
wait_healthy "$server"
say "healthy"

pid=$(podman inspect -f '{{.State.Pid}}' "$server")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 10001 ] || fail "the server runs as uid $uid, not 10001"
say "serve runs as uid $uid"

printf 'correct-horse-battery\n' |
  podman exec -i "$server" appliance admin user add alice --password-stdin >/dev/null ||
  fail "admin user add through exec failed"
podman exec "$server" appliance admin user list | grep -q ' alice ' ||
  fail "admin user list through exec does not show alice"
say "admin user add through exec"

url=$(url_of "$server")
token=$(curl -s -X POST "$url/api/login" -d '{"username":"alice","password":"correct-horse-battery"}' |
  sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || fail "login from the host through $url gave no token"
answer=$(validate "$url" "$token")
case "$answer" in
"HTTP/1.1 200"*"alice"*) ;;
*) fail "validate through $url answered: $answer" ;;
esac
say "login and validate from the host through $url"

took=$(stop "$server")
code=$(podman inspect -f '{{.State.ExitCode}}' "$server")
[ "$code" = 0 ] || fail "serve exited $code on SIGTERM"
[ "$took" -lt 10 ] || fail "stop took $took s (the grace period is 10 s)"
say "stop: exit 0 after $took s"

server2=$RUN_ID-server2
run_server "$server2"
wait_healthy "$server2"
url=$(url_of "$server2")
answer=$(validate "$url" "$token")
case "$answer" in
"HTTP/1.1 200"*"alice"*) ;;
*) fail "after a new container on the same volume, validate answered: $answer" ;;
esac
say "a new container on the same volume accepts the same token"

# The agent recipe of the README, as a sidecar sharing the server's network namespace
# (the server is then http://127.0.0.1:8080 for it). The agent has no server to
# health-check, hence --no-healthcheck there too.
pat=$(podman exec "$server2" appliance admin token create --user alice --name agent) ||
  fail "admin token create through exec failed"
podman volume create "$RUN_ID-agent" >/dev/null
printf '%s\n' "$pat" | podman run --rm -i --no-healthcheck --network "container:$server2" \
  -v "$RUN_ID-agent:/config" "$IMAGE" \
  login --server-url http://127.0.0.1:8080 --token-stdin >/dev/null ||
  fail "storing the PAT with login --token-stdin in a container failed"
agent=$RUN_ID-agent
podman run -d --name "$agent" --no-healthcheck --network "container:$server2" \
  -v "$RUN_ID-agent:/config" "$IMAGE" agent --interval 24h >/dev/null 2>>"$PODMAN_LOG"
for _ in $(seq 1 40); do
  podman logs "$agent" 2>&1 | grep -q '^INFO ' && break
  sleep 0.25
done
podman logs "$agent" 2>&1 | grep -q '^INFO not due' || {
  podman logs "$agent" >&2
  fail "the agent did not renew"
}
[ "$(podman inspect -f '{{.State.Running}}' "$agent")" = true ] || fail "the agent stopped"
stop "$agent" >/dev/null
code=$(podman inspect -f '{{.State.ExitCode}}' "$agent")
[ "$code" = 0 ] || fail "the agent exited $code on SIGTERM"
say "the agent recipe: PAT stored on a volume, renewed, stopped with exit 0"

stop "$server2" >/dev/null
say "ok (image $((size / 1000000)) MB)"
